"""The list filters: which fields take which operators, and their validation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from server.domain import errors, meeting_rules

OPERATORS = ("eq", "gt", "gte", "lt", "lte", "ne", "in", "nin")
NUMBER_FIELDS = ("start_date", "end_date")
TIME_FIELDS = ("created_at", "updated_at")
LIMIT_DEFAULT = 100
LIMIT_MAX = 100
IN_MAX = 100

Value = float | datetime | bool | str | tuple[float, ...] | tuple[datetime, ...]


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Value


@dataclass(frozen=True)
class ListQuery:
    conditions: tuple[Condition, ...] = ()
    limit: int = LIMIT_DEFAULT
    offset: int = 0


def build(conditions: list[Condition], limit: int | None, offset: int) -> ListQuery:
    """Validate the parts of a list request; raise InvalidFields naming each bad one."""
    problems = errors.FieldErrors()
    for condition in conditions:
        label = f"{condition.field}[{condition.op}]" if condition.op != "eq" else condition.field
        values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
        if condition.op in ("in", "nin") and len(values) > IN_MAX:
            problems.add(label, f"must list at most {IN_MAX} values")
        if condition.field in NUMBER_FIELDS:
            for value in values:
                assert isinstance(value, float)
                problem = meeting_rules.seconds_problem(value)
                if problem:
                    problems.add(label, problem)
                    break
    if limit is not None and not 1 <= limit:
        problems.add("limit", f"must be from 1 to {LIMIT_MAX}")
    problems.raise_if_any()
    effective = LIMIT_DEFAULT if limit is None else min(limit, LIMIT_MAX)
    return ListQuery(conditions=tuple(conditions), limit=effective, offset=offset)
