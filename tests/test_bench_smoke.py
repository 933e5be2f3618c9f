"""`make bench` code works: the harness at its smoke-test size writes every section.

Asserts that the figures exist and are positive, never how fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import install_debian_package

REPO = Path(__file__).resolve().parent.parent


def test_quick_bench_writes_every_section(tmp_path: Path) -> None:
    install_debian_package("wrk", Path("/usr/bin/wrk"))  # the REST load generator
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--quick", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    ops = ("create", "get", "list", "update")
    for section in ("framework_ceiling", "service"):
        for op in ops:
            for transport in ("rest", "grpc"):
                row = report[section][f"{transport}_{op}"]
                assert row["rps"] > 0 and row["p50_ms"] > 0 and row["p99_ms"] > 0, (section, op)
    for section in ("framework_ceiling_2", "service_2"):
        for key in ("rest_create", "grpc_create", "rest_list", "grpc_list"):
            assert report[section][key]["rps"] > 0, (section, key)
    # Memory of the server process before and after each load, and after the reminder runs.
    for op in ops:
        for transport in ("rest", "grpc"):
            before, after = report["service"][f"{transport}_{op}"]["rss_mib"]
            assert before[0] > 10 and after[0] > 10, (op, transport)
    for op in ops:
        assert report["database_ceiling"][op]["rps"] > 0, op
        assert report["fractions"][f"grpc_{op}"]["fraction"] > 0, op
    for scale in ("small", "large"):
        assert report["scale"][scale]["get_p50_ms"] > 0
        assert report["scale"][scale]["list_p50_ms"] > 0
    assert report["scale"]["list_ratio"] > 0
    steady = report["delivery"]["steady"]
    assert steady["messages"] == steady["rate"] * steady["seconds"] and steady["p99_late_ms"] > 0
    nulls = report["rest_nulls"]
    assert nulls["one_meeting_us"] > 0 and nulls["list_us"] > nulls["one_meeting_us"]
    delivery = report["delivery"]
    assert delivery["plain_smtplib"]["rate"] > 0
    for processes in (1, 2):
        assert delivery[f"processes_{processes}"]["messages"] == report["size"]["reminders"]
        assert delivery[f"processes_{processes}"]["rate"] > 0
        assert len(delivery[f"processes_{processes}"]["rss_mib_after"]) == processes
        # The servers' /metrics saw the same sends.
        assert delivery[f"processes_{processes}"]["metrics"]["sent"] == report["size"]["reminders"]
    observability = report["observability"]
    for label in ("off", "metrics", "tracing", "tracing_10pct"):
        assert observability[label]["rest"] > 0 and observability[label]["grpc"] > 0, label
    assert observability["otlp_exports"] > 0  # the traced stack sent its spans
    assert observability["counting"]["us_per_call"] > 0
    assert observability["counting"]["server_cpu_us_per_get"] > 0
    counted = observability["requests_counted"]
    # All but those in flight when a load stopped (16 at a time, REST and gRPC).
    assert counted["by_bench"] > 0 and abs(counted["by_metrics"] - counted["by_bench"]) <= 32
    recordings = report["recordings"]
    for backend in ("filesystem", "object_store"):
        assert recordings[backend]["upload_mib_s"] > 0, backend
        assert recordings[backend]["download_mib_s"] > 0, backend
        assert recordings[backend]["rss_peak_mib"] > 0, backend
    assert "scenario" in result.stdout  # the table was printed
