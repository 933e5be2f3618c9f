"""What metrics and traces cost on the request path, and what /metrics says of the load that
make bench itself measures.

The cost: `get` (REST and gRPC through Envoy) on three one-process stacks side by side, with
metrics off (METRICS_PORT=off), with metrics on and tracing off (the default), and with both on
(every trace kept, sent to a local OTLP/HTTP receiver that counts and drops them), measured in
alternating rounds; each figure is the median of its rounds (a slow minute of this shared
machine lands on all three).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import grpc_load, rest_load, stack
from bench.grpc_load import Workload
from server import supervisor
from server.domain.dashboard import quantile
from server.settings import Settings
from server.telemetry import metrics
from server.telemetry.metrics import LATENESS_BUCKETS
from server.transport import rpc
from server.transport.meeting_service import MeetingService
from tests.metrics_scrape import scrape, total
from tests.otlp_receiver import start_receiver

QUIET = {"DELIVERY_ENABLED": "false"}


def summed(ports: list[int], name: str, **labels: str) -> float:
    """`name` summed over every process's endpoint (bench stacks run servers alone)."""
    return sum(total(scrape(port), name, **labels) for port in ports)


def overhead(db: dict[str, Any], size: Any, workdir: Path, rounds_count: int) -> dict[str, Any]:
    work: Workload = db["work"]
    rounds: dict[str, list[dict[str, float]]] = {
        "off": [],
        "metrics": [],
        "tracing": [],
        "tracing_10pct": [],
    }
    counted: dict[str, float] = {"bench": 0.0, "metrics": 0.0, "server_cpu_seconds": 0.0}
    # Short rounds, many of them: this machine's minute-to-minute noise (±10%) is larger than
    # what is measured, and alternating often spreads it over all four stacks alike.
    seconds = max(1.0, size.seconds / 2)
    with contextlib.ExitStack() as running:
        sink = running.enter_context(contextlib.contextmanager(start_receiver)(decode=False))
        every, tenth = (
            Settings(otlp_endpoint=sink.endpoint, trace_sample_ratio=ratio) for ratio in (1.0, 0.1)
        )
        traced = {**QUIET, "OTEL_EXPORTER_OTLP_ENDPOINT": sink.endpoint}
        stacks = {
            "off": stack.Stack(
                workdir / "obs_off", db["url"], env={**QUIET, "METRICS_PORT": "off"}
            ),
            "metrics": stack.Stack(workdir / "obs_metrics", db["url"], env=QUIET),
            "tracing": stack.Stack(
                workdir / "obs_tracing",
                db["url"],
                env=traced,
                envoy_values=supervisor.tracing_values(every),
            ),
            # What production would run: a tenth of the traces kept (Envoy decides).
            "tracing_10pct": stack.Stack(
                workdir / "obs_tracing_10",
                db["url"],
                env={**traced, "TRACE_SAMPLE_RATIO": "0.1"},
                envoy_values=supervisor.tracing_values(tenth),
            ),
        }
        for s in stacks.values():
            running.enter_context(s)
        order = list(stacks.items())
        for turn in range(rounds_count):
            # Each round starts with another stack: no stack always follows the same one.
            shift = turn % len(order)
            for label, s in order[shift:] + order[:shift]:
                before = (
                    summed(s.metrics_ports, "grpc_server_handled_total")
                    if label == "metrics"
                    else 0
                )
                with stack.cpu_meter({"server": s.server_pids}) as cpu:
                    rest = rest_load.run(
                        s.gateway, "get", work, concurrency=size.concurrency, seconds=seconds
                    )
                    native = grpc_load.run(
                        s.gateway,
                        "get",
                        work,
                        concurrency=size.concurrency,
                        seconds=seconds,
                        max_requests=size.max_requests,
                    )
                rounds[label].append({"rest": rest.rps, "grpc": native.rps})
                if label == "metrics":
                    after = summed(s.metrics_ports, "grpc_server_handled_total")
                    counted["metrics"] += after - before
                    counted["bench"] += rest.requests + native.requests
                    counted["server_cpu_seconds"] += cpu["server"]
        exported = sink.requests
    found: dict[str, Any] = {"rounds": rounds_count, "otlp_exports": exported}
    for label, measured in rounds.items():
        found[label] = {
            t: round(statistics.median(m[t] for m in measured), 1) for t in ("rest", "grpc")
        }
    for label in ("metrics", "tracing", "tracing_10pct"):
        found[f"{label}_overhead_pct"] = {
            t: round(100 * (1 - found[label][t] / found["off"][t]), 1) if found["off"][t] else 0.0
            for t in ("rest", "grpc")
        }
    found["requests_counted"] = {
        "by_bench": int(counted["bench"]),
        "by_metrics": int(counted["metrics"]),
    }
    # The precise figure beside the noisy one: what the counting costs per call, timed here,
    # against the server's CPU per get measured above.
    cpu_us = 1e6 * counted["server_cpu_seconds"] / counted["bench"] if counted["bench"] else 0.0
    counting = counting_cost_us()
    found["counting"] = {
        "us_per_call": round(counting, 2),
        "server_cpu_us_per_get": round(cpu_us, 1),
        "pct_of_server_cpu": round(100 * counting / cpu_us, 2) if cpu_us else 0.0,
    }
    return found


class _Call:
    """What Observed reads of a servicer context, for one call that returned normally."""

    def code(self) -> None:
        return None

    def is_active(self) -> bool:
        return True


def counting_cost_us(calls: int = 100_000) -> float:
    """Microseconds the request path's metric updates add to one call: an RPC's begin and end
    (rpc.Observed) and the pool gauge's checkout and return, with metrics on, less the same
    with them off (the activity and tracing checks run either way), best of three."""
    method = MeetingService.GetMeeting
    observed, call = rpc.Observed(method, stream=False, live=False), _Call()

    def one_pass() -> float:
        started = time.perf_counter()
        for _ in range(calls):
            observed.end(observed.begin(), call)
            if metrics.enabled:
                metrics.DB_POOL_IN_USE.inc()
                metrics.DB_POOL_IN_USE.dec()
        return (time.perf_counter() - started) / calls * 1e6

    timed = {}
    for state in (True, False):
        metrics.enabled = state
        timed[state] = min(one_pass() for _ in range(3))
    metrics.enabled = True
    return timed[True] - timed[False]


class Watch:
    """Scrapes the servers' /metrics every half second during a delivery run: the peak backlog
    they report, and (at the end) the sends and the reminder lateness they counted."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.peak_backlog = 0.0
        self.peak_oldest_due_seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._before: dict[str, Any] = {}

    def __enter__(self) -> Watch:
        self._before = self._counts()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(OSError):
                first = scrape(self.ports[0])  # the database's view is the same from each
                due = total(first, "meetings_outbox_messages", kind="email")
                oldest = total(first, "meetings_outbox_oldest_due_age_seconds", kind="email")
                self.peak_backlog = max(self.peak_backlog, due)
                self.peak_oldest_due_seconds = max(self.peak_oldest_due_seconds, oldest)

    def _counts(self) -> dict[str, Any]:
        scraped = [scrape(port) for port in self.ports]
        buckets = [
            sum(total(s, "meetings_reminder_lateness_seconds_bucket", le=_le(b)) for s in scraped)
            for b in (*LATENESS_BUCKETS, float("inf"))
        ]
        sent = sum(
            total(s, "meetings_deliveries_total", kind="email", outcome="sent") for s in scraped
        )
        return {"sent": sent, "buckets": buckets}

    def report(self) -> dict[str, Any]:
        """What the metrics say of the run (read after it)."""
        now = self._counts()
        cumulative = [a - b for a, b in zip(now["buckets"], self._before["buckets"], strict=True)]
        per_bucket = tuple(
            int(c - (cumulative[i - 1] if i else 0)) for i, c in enumerate(cumulative)
        )
        p50, p99 = (quantile(per_bucket, LATENESS_BUCKETS, q) for q in (0.5, 0.99))
        return {
            "sent": int(now["sent"] - self._before["sent"]),
            "p50_late_ms": None if p50 is None else round(p50 * 1000, 1),
            "p99_late_ms": None if p99 is None else round(p99 * 1000, 1),
            "peak_backlog": int(self.peak_backlog),
            "peak_oldest_due_seconds": round(self.peak_oldest_due_seconds, 1),
        }


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else str(float(bound))


def render(found: dict[str, Any]) -> Iterator[str]:
    off, on, traced, tenth = (found[k] for k in ("off", "metrics", "tracing", "tracing_10pct"))
    cost, trace_cost = found["metrics_overhead_pct"], found["tracing_overhead_pct"]
    tenth_cost = found["tracing_10pct_overhead_pct"]
    yield (
        f"observability (get, median of {found['rounds']} rounds): metrics off REST"
        f" {off['rest']:.0f}/s gRPC {off['grpc']:.0f}/s; metrics on {on['rest']:.0f}/s"
        f" {on['grpc']:.0f}/s (cost {cost['rest']:+.1f}% / {cost['grpc']:+.1f}%: whole stacks,"
        f" inside this machine's noise); with tracing {traced['rest']:.0f}/s {traced['grpc']:.0f}/s"
        f" ({trace_cost['rest']:+.1f}%, {trace_cost['grpc']:+.1f}%), a tenth of traces kept"
        f" {tenth['rest']:.0f}/s {tenth['grpc']:.0f}/s ({tenth_cost['rest']:+.1f}%,"
        f" {tenth_cost['grpc']:+.1f}%)"
    )
    counting = found["counting"]
    yield (
        f"  the counting itself: {counting['us_per_call']} µs per call (timed alone) of"
        f" {counting['server_cpu_us_per_get']} µs of server CPU per get ="
        f" {counting['pct_of_server_cpu']}% (the metrics' cost; target < 5%:"
        f" {'yes' if counting['pct_of_server_cpu'] < 5 else 'NO'})"
    )
    counted = found["requests_counted"]
    yield (
        f"  requests: {counted['by_bench']} sent by the bench,"
        f" {counted['by_metrics']} counted by grpc_server_handled_total"
    )
