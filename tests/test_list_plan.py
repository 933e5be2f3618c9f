"""The list query stays on indexes as meetings grow (no sequential scan of meetings)."""

from __future__ import annotations

from typing import Any

import psycopg2

from bench import list_plan, seed
from server.storage import database
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


def test_a_host_of_thousands_of_meetings_still_gets_index_scans(
    postgres: PgDatabase, db: Any
) -> None:
    # The planner over-estimates a heavy host's meetings in the window; the list must still
    # not scan the table (it did, with one date filter over a union of ids).
    conn = psycopg2.connect(**database.connection_params(postgres.url))
    seed.seed(conn, users=1_000, meetings=20_000)
    with conn.cursor() as cur:
        cur.execute(
            "UPDATE meetings SET host_id = 42, start_date = start_date + %s"
            " WHERE id IN (SELECT id FROM meetings ORDER BY id LIMIT 6000)",
            (seed.YEAR,),
        )
        cur.execute("ANALYZE meetings")
    conn.commit()
    conn.close()
    caller = list_plan.caller_for(42)
    sql, params = list_plan.list_statement(caller, list_plan.month_query())
    plan = list_plan.explain(db, sql, params, analyze=False)
    assert "Seq Scan" not in plan, plan
    assert "meetings_host_start_idx" in plan, plan
