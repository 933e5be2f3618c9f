"""Prepared statements (server.storage.database.execute_prepared), on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bench import list_plan
from server.settings import Settings, SettingsError
from server.storage import database
from tests.conftest import PgDatabase

SUM = "SELECT %s::integer + %s::integer"


@pytest.fixture
def connect(postgres: PgDatabase, pool: Any) -> Iterator[Callable[[bool], Any]]:
    """Pools of the test's own; the session's pool is bound to the models again afterwards."""
    made: list[Any] = []

    def make(prepared: bool) -> Any:
        made.append(database.connect(postgres.url, 2, prepared=prepared))
        return made[-1]

    yield make
    for own in made:
        own.close_all()
    database.db.initialize(pool)


def prepared_statements(own: Any) -> list[Any]:
    return list(own.execute_sql("SELECT name, statement FROM pg_prepared_statements"))


def test_a_statement_is_prepared_once_per_connection(connect: Callable[[bool], Any]) -> None:
    own = connect(True)
    with own.connection_context():
        results = [database.execute_prepared(SUM, (n, 1)).fetchone() for n in range(3)]
        assert results == [(1,), (2,), (3,)]
        assert prepared_statements(own) == [
            ("meetings_0", "PREPARE meetings_0 AS SELECT $1::integer + $2::integer")
        ]


def test_a_prepared_statement_outlives_a_rolled_back_transaction(
    connect: Callable[[bool], Any],
) -> None:
    own = connect(True)
    with own.connection_context():
        with own.atomic() as transaction:
            assert database.execute_prepared(SUM, (1, 1)).fetchone() == (2,)
            transaction.rollback()
        assert database.execute_prepared(SUM, (2, 2)).fetchone() == (4,)
        assert len(prepared_statements(own)) == 1


def test_prepared_statements_can_be_turned_off(connect: Callable[[bool], Any]) -> None:
    own = connect(False)
    with own.connection_context():
        assert database.execute_prepared(SUM, (20, 22)).fetchone() == (42,)
        assert prepared_statements(own) == []


def test_a_capture_sees_the_statement_as_written(connect: Callable[[bool], Any]) -> None:
    own = connect(True)
    with own.connection_context():
        captured = list_plan.capture(lambda: database.execute_prepared(SUM, (1, 2)))
    assert captured == [(SUM, (1, 2))]


def test_the_setting() -> None:
    assert Settings.from_env({}).db_prepared_statements is True
    assert Settings.from_env({"DB_PREPARED_STATEMENTS": "false"}).db_prepared_statements is False
    with pytest.raises(SettingsError, match="DB_PREPARED_STATEMENTS"):
        Settings.from_env({"DB_PREPARED_STATEMENTS": "sometimes"})
