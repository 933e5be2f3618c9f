"""Operator command line: create users and print session tokens.

    meetings-admin create-user LOGIN --password P [--email E] [--full-name N]
    meetings-admin token LOGIN          # prints a new session token for that user
    meetings-admin settings [--meeting-url-template T] [--sender S]   # show, or change and show
    meetings-admin service-key admin|media   # a new admin API / media server key (shown once)
    meetings-admin app [--id N] [--rotate]   # the application's id, auth key and auth secret
    meetings-admin migrate              # apply the schema migrations (before an upgrade)

It uses DATABASE_URL, or the embedded server in DATA_DIR (the running one, or started for the
command if the service is stopped); it never makes a new database: without one it exits with
status 2, naming where it looked.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.domain import applications, auth, errors, meeting_settings, service_keys
from server.settings import REPO, Settings, SettingsError
from server.storage import database, embedded_db, migrations


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="meetings-admin", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-user", help="create a user")
    create.add_argument("login")
    create.add_argument("--password", help="prompted for if not given")
    create.add_argument("--email", default="")
    create.add_argument("--full-name", default="")
    token = commands.add_parser("token", help="print a new session token for a user")
    token.add_argument("login")
    configure = commands.add_parser(
        "settings", help="show or change the meeting settings (applied without a restart)"
    )
    configure.add_argument("--meeting-url-template", help="join link, %%s = the meeting _id")
    configure.add_argument("--sender", help="From of notification emails, 'Name <address>'")
    configure.add_argument("--app-name", help="the service's name in emails")
    configure.add_argument("--recording-email", choices=("true", "false"),
                           help="email the host when recordings are ready")  # fmt: skip
    configure.add_argument("--recording-email-attendees", choices=("true", "false"),
                           help="email the attendees too")  # fmt: skip
    configure.add_argument("--recording-link-days", help="1 to 7: the email's links' lifetime")
    key = commands.add_parser(
        "service-key", help="make a new admin API or media server key (replaces the old one)"
    )
    key.add_argument("kind", choices=service_keys.KINDS)
    application = commands.add_parser(
        "app", help="show the application credentials the SDKs are configured with, or change them"
    )
    application.add_argument("--id", type=int, help="a new application id")
    application.add_argument(
        "--rotate", action="store_true", help="new auth key and secret (the old ones stop working)"
    )
    commands.add_parser(
        "migrate", help="apply the schema migrations not yet applied, and print them"
    )
    return parser


def _create_user(args: argparse.Namespace, settings: Settings) -> None:
    password = args.password or getpass.getpass("Password: ")
    user_id = auth.create_user(args.login, password, args.email, args.full_name)
    print(f"created user {args.login!r} with id {user_id}")


def _token(args: argparse.Namespace, settings: Settings) -> None:
    print(auth.issue_token(args.login, settings.token_ttl_seconds).token)


def _settings(args: argparse.Namespace, settings: Settings) -> None:
    names = meeting_settings.NAMES
    changes = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    current = meeting_settings.update(changes) if changes else meeting_settings.load()
    for name in names:
        print(f"{name} = {meeting_settings.as_text(getattr(current, name))}")


def _service_key(args: argparse.Namespace, settings: Settings) -> None:
    print(service_keys.issue(args.kind))


def _application(args: argparse.Namespace, settings: Settings) -> None:
    changed = args.id is not None or args.rotate
    app = applications.configure(args.id, args.rotate) if changed else applications.current()
    print(f"application_id = {app.id}\nauth_key = {app.auth_key}\nauth_secret = {app.auth_secret}")


def _migrate(pool: Any) -> None:
    """Every other command migrates first too; this one lets an operator do it as a step of
    its own (before starting upgraded servers), under the same advisory lock."""
    names = {version: name for version, name, _ in migrations.MIGRATIONS}
    applied = migrations.migrate(pool)
    for version in applied:
        print(f"applied migration {version}: {names[version]}")
    if not applied:
        print(f"schema up to date (version {migrations.current_version(pool)})")


def _no_database(pgdata: Path, data_dir: Path) -> str:
    message = (
        f"meetings-admin: no database in {pgdata} (DATA_DIR={data_dir}), and this command"
        " does not create one. Set DATA_DIR to the service's data directory, or DATABASE_URL"
        " to its database."
    )
    # `make run` (and the README) keep it in the checkout's data/, whatever the shell's cwd.
    default = embedded_db.pgdata_of(REPO / Settings().data_dir)
    if default != pgdata and (default / "PG_VERSION").is_file():
        message += f" There is one in {default}: DATA_DIR={default.parent}"
    return message


COMMANDS: dict[str, Callable[[argparse.Namespace, Settings], None]] = {
    "create-user": _create_user,
    "token": _token,
    "settings": _settings,
    "service-key": _service_key,
    "app": _application,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    url = settings.database_url
    if url is None:
        try:
            # Joins the service's server when it runs (the wrapper leaves it running when
            # this process exits), else starts it for the command and stops it after.
            url = embedded_db.EmbeddedPostgres(settings.data_dir, create=False).url()
        except embedded_db.NoCluster as missing:
            print(_no_database(missing.pgdata, settings.data_dir), file=sys.stderr)
            return 2
    # Behind PgBouncer in transaction mode, as the servers: no prepared statements.
    pool = database.connect(url, 2, prepared=settings.db_prepared_statements)
    if args.command == "migrate":
        try:
            _migrate(pool)
        finally:
            pool.close_all()
        return 0
    migrations.migrate(pool)
    try:
        with pool.connection_context():
            COMMANDS[args.command](args, settings)
    except errors.InvalidFields as exc:
        for field, messages in exc.fields.items():
            for message in messages:
                print(f"{field}: {message}", file=sys.stderr)
        return 1
    except errors.NotFound as exc:
        print(exc.message, file=sys.stderr)
        return 1
    finally:
        pool.close_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
