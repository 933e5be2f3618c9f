"""REST load through Envoy with wrk (bench/wrk/meetings.lua), bounded by wrk's duration."""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.grpc_load import Workload

SCRIPT = Path(__file__).resolve().parent / "wrk" / "meetings.lua"


@dataclass(frozen=True)
class WrkResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    client_cpu_seconds: float

    @property
    def rps(self) -> float:
        return (self.requests - self.errors) / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_cpu_percent(self) -> float:
        return 100 * self.client_cpu_seconds / self.seconds if self.seconds > 0 else 0.0


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk is not installed (`apt-get install -y wrk`; `make bench` does it)")
    return found


def run(gateway: str, op: str, work: Workload, *, concurrency: int, seconds: float) -> WrkResult:
    env = {
        "BENCH_OP": op,
        "BENCH_TOKEN": work.token,
        "BENCH_IDS": ",".join(work.meeting_ids),
        "BENCH_LIST_GTE": str(work.list_gte),
        "BENCH_LIST_LT": str(work.list_lt),
        "BENCH_ATTENDEES": json.dumps([{"id": i} for i in work.attendee_ids]),
        "PATH": "/usr/bin:/bin",
    }
    threads = min(2, concurrency)
    args = [wrk_binary(), f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(  # noqa: S603 (wrk with our script)
        [*args, "--timeout", "10s", "-s", str(SCRIPT), f"http://{gateway}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(x for x in result.stdout.splitlines() if x.startswith("BENCH "))
    data = json.loads(line[len("BENCH ") :])
    return WrkResult(
        requests=data["requests"],
        errors=data["status_errors"] + data["socket_errors"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        client_cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )
