"""Migrations: applied once, safe to run again and from several processes at once."""

from __future__ import annotations

import ast
import subprocess
import sys
from typing import Any

import psycopg2

from server.storage import database, migrations
from tests.conftest import PgDatabase, _create_database, _drop_database


def test_running_again_applies_nothing(pool: Any) -> None:
    assert migrations.migrate(pool) == []
    assert migrations.current_version(pool) == max(v for v, _, _ in migrations.MIGRATIONS)


def test_two_processes_migrating_a_new_database_at_once(postgres: PgDatabase) -> None:
    name = f"{postgres.name}_mig"
    _create_database(postgres.admin_url, name)
    url = postgres.url.replace(f"/{postgres.name}", f"/{name}")
    try:
        script = (
            "import sys; from server.storage import database, migrations; "
            "db = database.connect(sys.argv[1], 2); print(migrations.migrate(db))"
        )
        runs = [
            subprocess.Popen([sys.executable, "-c", script, url], stdout=subprocess.PIPE, text=True)
            for _ in range(3)
        ]
        outputs = [run.communicate(timeout=60)[0].strip() for run in runs]
        assert [run.returncode for run in runs] == [0, 0, 0]
        # Each migration was applied by exactly one of the processes (each takes the lock per
        # migration, so one may apply the first ones and another the rest, in order).
        applied = [v for output in outputs for v in ast.literal_eval(output)]
        assert sorted(applied) == [v for v, _, _ in migrations.MIGRATIONS]
        conn = psycopg2.connect(**database.connection_params(url))
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM schema_migrations ORDER BY 1")
            rows = cur.fetchall()
        conn.close()
        assert [r[0] for r in rows] == [v for v, _, _ in migrations.MIGRATIONS]
    finally:
        _drop_database(postgres.admin_url, name)


def test_chat_messages_written_before_migration_6_keep_their_history_order(
    postgres: PgDatabase, pool: Any, monkeypatch: Any
) -> None:
    name = f"{postgres.name}_mig6"
    _create_database(postgres.admin_url, name)
    url = postgres.url.replace(f"/{postgres.name}", f"/{name}")
    old = database.connect(url, 2)
    try:
        monkeypatch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:5])
        assert migrations.migrate(old)[-1] == 5
        with old.connection_context():
            # Only the rows that matter: no meeting or user behind them (the foreign keys'
            # triggers are off for this session: the tests' role is a superuser).
            old.execute_sql(
                "SET session_replication_role = replica;"
                "INSERT INTO chat_dialogs VALUES ('d', 'm', 'M', now(), now());"
                "INSERT INTO chat_messages (id, dialog_id, sender_id, message, date_sent,"
                " created_at, updated_at) VALUES"
                " ('c', 'd', 1, 'third', 30, now(), now()),"
                " ('a', 'd', 1, 'first', 10, now(), now()),"
                " ('b', 'd', 1, 'second', 10, now(), now())"
            )
        monkeypatch.undo()
        assert migrations.migrate(old) == [v for v, _, _ in migrations.MIGRATIONS[5:]]
        with old.connection_context():
            old.execute_sql(
                "INSERT INTO chat_messages (id, dialog_id, sender_id, message, date_sent,"
                " created_at, updated_at) VALUES ('0', 'd', 1, 'new', 5, now(), now())"
            )
            rows = old.execute_sql("SELECT message FROM chat_messages ORDER BY seq").fetchall()
        assert [r[0] for r in rows] == ["first", "second", "third", "new"]
    finally:
        old.close_all()
        database.db.initialize(pool)  # connect() bound the models to `old`: back to the tests'
        _drop_database(postgres.admin_url, name)
