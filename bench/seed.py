"""Load many users and meetings straight into PostgreSQL with COPY (not through the API).

    python -m bench.seed DATABASE_URL --users 100000 --meetings 1000000

Meeting i is hosted by user i % users + 1, starts within one year, and has two attendees by
user id; every tenth also has one by email. The schema must already be migrated.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2

from server.storage import database

BASE_START = 1_767_225_600  # 2026-01-01T00:00:00Z
YEAR = 365 * 86400
CHUNK = 200_000
STAMP = "2026-01-01T00:00:00.000Z"


def object_id(kind: int, n: int) -> str:
    return f"{kind:02x}{n:022x}"


def _copy(
    cur: Any, table: str, columns: str, rows: Callable[[int, int], Iterator[str]], total: int
) -> None:
    for start in range(0, total, CHUNK):
        buffer = io.StringIO("".join(rows(start, min(total, start + CHUNK))))
        cur.copy_expert(f"COPY {table} ({columns}) FROM STDIN", buffer)


def seed(conn: Any, users: int, meetings: int) -> None:
    """Append `users` users and `meetings` meetings (ids after any already there)."""
    with conn.cursor() as cur:
        cur.execute("SELECT coalesce(max(id), 0) FROM users")
        first_user = int(cur.fetchone()[0]) + 1

        def user_rows(a: int, b: int) -> Iterator[str]:
            for n in range(a, b):
                uid = first_user + n
                yield (
                    f"{uid}\t{object_id(1, uid)}\tuser{uid}\tuser{uid}@example.com\tUser {uid}"
                    f"\tf\t{STAMP}\t{STAMP}\n"
                )

        _copy(
            cur,
            "users",
            "id, object_id, login, email, full_name, is_guest, created_at, updated_at",
            user_rows,
            users,
        )
        cur.execute("SELECT setval('users_id_seq', (SELECT max(id) FROM users))")

        def host(n: int) -> int:
            return first_user + n % users

        def meeting_rows(a: int, b: int) -> Iterator[str]:
            for n in range(a, b):
                start = BASE_START + (n * 7919) % YEAR
                yield (
                    f"{object_id(2, n)}\tMeeting {n}\t{start}\t{start + 3600}\t{host(n)}"
                    f"\t{STAMP}\t{STAMP}\n"
                )

        _copy(
            cur,
            "meetings",
            "id, name, start_date, end_date, host_id, created_at, updated_at",
            meeting_rows,
            meetings,
        )

        def attendee_rows(a: int, b: int) -> Iterator[str]:
            for n in range(a, b):
                mid = object_id(2, n)
                yield f"{mid}\t0\t{first_user + (n * 7) % users}\t\\N\t\\N\n"
                yield f"{mid}\t1\t{first_user + (n * 13) % users}\t\\N\t\\N\n"
                if n % 10 == 0:
                    email = f"user{first_user + (n * 17) % users}@example.com"
                    yield f"{mid}\t2\t\\N\t{email}\t{email}\n"

        _copy(
            cur,
            "meeting_attendees",
            "meeting_id, position, user_id, email, email_norm",
            attendee_rows,
            meetings,
        )
    conn.commit()
    conn.autocommit = True
    with conn.cursor() as cur:
        # VACUUM too, as after any bulk load: otherwise autovacuum's first pass over the new
        # rows (and their hint bits) would run during the measurements that follow.
        cur.execute("VACUUM ANALYZE users, meetings, meeting_attendees")
    conn.autocommit = False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--meetings", type=int, default=1_000_000)
    args = parser.parse_args()
    conn = psycopg2.connect(**database.connection_params(args.database_url))
    started = time.monotonic()
    seed(conn, args.users, args.meetings)
    print(
        f"loaded {args.users} users and {args.meetings} meetings "
        f"in {time.monotonic() - started:.1f} s"
    )


if __name__ == "__main__":
    main()
