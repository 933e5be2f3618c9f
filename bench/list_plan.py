"""The list query exactly as the service issues it (captured from Peewee), and its plan.

python -m bench.list_plan DATABASE_URL USER_ID   # prints EXPLAIN (ANALYZE, BUFFERS)
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from typing import Any

from bench.seed import BASE_START
from server.domain import auth, clock, meeting_filters, meeting_values, meetings
from server.storage import database
from server.storage.models import User


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            sql = record.msg[0]
            # A prepared statement is logged as written too (storage.database.execute_prepared):
            # keep that, not the PREPARE/EXECUTE that carry it.
            if not sql.startswith(("PREPARE ", "EXECUTE ", "DEALLOCATE ")):
                self.queries.append((sql, tuple(record.msg[1] or ())))


def capture(action: Callable[[], Any]) -> list[tuple[str, tuple[Any, ...]]]:
    """The SQL statements (with parameters) that `action` issues, from Peewee's logger."""
    handler = _Capture()
    logger = logging.getLogger("peewee")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        action()
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    return handler.queries


def caller_for(user_id: int) -> auth.Caller:
    user = User.get_by_id(user_id)
    return auth.Caller(user.id, user.login, user.email, False, "", clock.now())


def list_statement(
    caller: auth.Caller, query: meeting_values.ListQuery
) -> tuple[str, tuple[Any, ...]]:
    """Run the service's list once and return the SQL and parameters of its meetings query."""
    queries = capture(lambda: meetings.list_page(caller, query, count=False))
    for sql, params in queries:
        if sql.lstrip().startswith("SELECT") and "UNION" in sql:
            return sql, params
    raise LookupError("the list query was not captured")


def explain(db: Any, sql: str, params: tuple[Any, ...], analyze: bool = True) -> str:
    options = "ANALYZE, BUFFERS" if analyze else "COSTS OFF"
    rows = db.execute_sql(f"EXPLAIN ({options}) {sql}", params).fetchall()
    return "\n".join(row[0] for row in rows)


def month_query() -> meeting_values.ListQuery:
    """A user's meetings in one month of the seeded year: start_date[gte] & start_date[lt]."""
    return meeting_filters.build(
        [
            meeting_values.Condition("start_date", "gte", float(BASE_START + 90 * 86400)),
            meeting_values.Condition("start_date", "lt", float(BASE_START + 120 * 86400)),
        ],
        None,
        0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("user_id", type=int)
    args = parser.parse_args()
    db = database.connect(args.database_url, 2)
    with db.connection_context():
        sql, params = list_statement(caller_for(args.user_id), month_query())
        print(db.execute_sql("SELECT count(*) FROM meetings").fetchone()[0], "meetings")
        print(sql % tuple(repr(p) for p in params))
        print(explain(db, sql, params))


if __name__ == "__main__":
    main()
