"""The list filters' rules: how many values, whole seconds, and the page size."""

from __future__ import annotations

from server.domain import errors, meeting_rules, text
from server.domain.meeting_values import (
    LIMIT_DEFAULT,
    NUMBER_FIELDS,
    SET_OPERATORS,
    Condition,
    ListQuery,
)

LIMIT_MAX = 100
IN_MAX = 100


def build(conditions: list[Condition], limit: int | None, offset: int) -> ListQuery:
    """Validate the parts of a list request; raise InvalidFields naming each bad one."""
    problems = errors.FieldErrors()
    for condition in conditions:
        label = f"{condition.field}[{condition.op}]" if condition.op != "eq" else condition.field
        values = condition.value if isinstance(condition.value, tuple) else (condition.value,)
        if not text.check(problems, label, *(v for v in values if isinstance(v, str))):
            continue
        if condition.op in SET_OPERATORS and len(values) > IN_MAX:
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
