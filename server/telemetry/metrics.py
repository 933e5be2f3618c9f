"""The Prometheus metrics a server process updates as it works: each is defined here, once.

What is read from the database when /metrics is scraped (the outbox backlog, the webhook
endpoint's state, the recordings stored) is not here but in `server.metrics_endpoint`, which
serves everything. Names follow Prometheus' conventions: base units (seconds, bytes), `_total`
for counters, a `meetings_` prefix, except for the gRPC server's, which keep the names
go-grpc-prometheus made common (dashboards and alerts written for them work unchanged). No
label takes a value a user chose: methods, codes, kinds, topics and outcomes are fixed sets.

Several server processes on one machine (SERVER_PROCESSES): the supervisor sets
PROMETHEUS_MULTIPROC_DIR for them before they start, prometheus_client keeps each process's
values in files there, and the supervisor's /metrics adds them up. Gauges say how: `livesum`
sums the processes that are alive.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# False with METRICS_PORT=off: nothing serves them, so the request path does not count them
# (the dashboard's activity is counted either way). What their counting costs: make bench.
enabled = True


def disable() -> None:
    global enabled
    enabled = False


# The dashboard stores counts per bucket (activity_minutes): changing a list of bounds needs a
# migration that empties that table.
# From 1 ms (a cached read) to 10 s (the longest unary deadline the gateway allows).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# From 10 ms to an hour: a healthy loop sends well under a second late; a backlog drains over
# tens of seconds (make bench: 10,000 due at once, p99 ~50 s), hence the steps to a minute.
LATENESS_BUCKETS = (
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 45.0, 60.0),
    *(120.0, 300.0, 900.0, 3600.0),
)

_RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")

RPC_STARTED = Counter("grpc_server_started_total", "RPCs started on the server.", _RPC_LABELS)
RPC_HANDLED = Counter(
    "grpc_server_handled_total",
    "RPCs completed on the server, by gRPC status code.",
    (*_RPC_LABELS, "grpc_code"),
)
RPC_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Time from an RPC's start to its status (a stream's whole life).",
    _RPC_LABELS,
    buckets=LATENCY_BUCKETS,
)

DB_POOL_IN_USE = Gauge(
    "meetings_db_pool_connections_in_use",
    "Pooled database connections checked out.",
    multiprocess_mode="livesum",
)
DB_POOL_MAX = Gauge(
    "meetings_db_pool_connections_max",
    "Pooled database connections a process may open.",
    multiprocess_mode="livesum",
)
DB_POOL_WAIT_SECONDS = Histogram(
    "meetings_db_pool_wait_seconds",
    "Time a call waited for a free pooled connection (its count: calls that had to wait).",
    buckets=LATENCY_BUCKETS,
)

DELIVERIES = Counter(
    "meetings_deliveries_total",
    "Delivery attempts of outbox messages, by outcome: sent, retried (scheduled again), "
    "failed (given up), cancelled, unrecorded (the row changed while it was sent).",
    ("kind", "topic", "outcome"),
)
REMINDER_LATENESS_SECONDS = Histogram(
    "meetings_reminder_lateness_seconds",
    "How long after its due time a reminder email was sent.",
    buckets=LATENESS_BUCKETS,
)

RECORDING_UPLOADS_IN_FLIGHT = Gauge(
    "meetings_recording_uploads_in_flight",
    "Recording uploads being received.",
    multiprocess_mode="livesum",
)
RECORDING_UPLOADED_BYTES = Counter(
    "meetings_recording_uploaded_bytes_total", "Bytes of recordings received and stored."
)
