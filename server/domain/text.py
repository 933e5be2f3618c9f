"""Text a client sends, checked before anything uses it: PostgreSQL cannot store a NUL
character in text (it would fail the statement), so a string with one is refused at the edge
of the domain, naming its field, and nothing reaches the database."""

from __future__ import annotations

from server.domain import errors

PROBLEM = "must not contain NUL characters"


def check(problems: errors.FieldErrors, field: str, *values: str | None) -> bool:
    """Add PROBLEM for `field` if any of `values` holds a NUL; True if none does."""
    if any(value and "\x00" in value for value in values):
        problems.add(field, PROBLEM)
        return False
    return True


def require(**fields: str | None) -> None:
    """InvalidFields naming each of `fields` (name=value) whose value holds a NUL."""
    problems = errors.FieldErrors()
    for field, value in fields.items():
        check(problems, field, value)
    problems.raise_if_any()
