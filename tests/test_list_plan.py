"""The list query stays on indexes as meetings grow (no sequential scan of meetings)."""

from __future__ import annotations

from typing import Any

import psycopg2

from bench import list_plan, seed
from server import database
from tests.conftest import PgDatabase


def test_list_query_uses_indexes(postgres: PgDatabase, db: Any) -> None:
    conn = psycopg2.connect(**database.connection_params(postgres.url))
    seed.seed(conn, users=5_000, meetings=50_000)
    conn.close()
    caller = list_plan.caller_for(42)
    sql, params = list_plan.list_statement(caller, list_plan.month_query())
    plan = list_plan.explain(db, sql, params, analyze=False)
    assert "Seq Scan" not in plan, plan
    for index in (
        "meetings_host_start_idx",
        "meeting_attendees_user_idx",
        "meeting_attendees_email_idx",
        "meetings_pkey",
    ):
        assert index in plan, plan
