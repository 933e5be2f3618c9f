"""OpenTelemetry traces, off unless OTEL_EXPORTER_OTLP_ENDPOINT is set: a span per RPC (the gRPC
instrumentation's server interceptor, continuing the W3C `traceparent` Envoy sends), a span per
SQL statement (the psycopg2 instrumentation), one for each outbox write, and one per delivery
attempt, linked to the request that wrote its row (`traceparent` is stored with it).

Off, each helper returns at once (a flag test: nothing on the request path). Spans go to the
collector in batches (OTLP over HTTP, protobuf) from a thread of the SDK; a
collector that is down costs dropped spans, never a request.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

SERVICE_NAME = "meetings-api"
# Checks and discovery, not API calls: never traced (Envoy's health checks come every second).
UNTRACED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")

_tracer = trace.get_tracer("meetings")
_propagator = TraceContextTextMapPropagator()
_enabled = False


def configure(endpoint: str, sample_ratio: float, instance: str) -> None:
    """Export this process's spans to `endpoint` (an OTLP/HTTP collector's base URL), keeping
    `sample_ratio` of the traces that start here (those Envoy starts follow its choice), and
    trace every SQL statement. Call once, before the gRPC server is made."""
    global _enabled, _tracer
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.psycopg2 import Psycopg2Instrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    resource = Resource.create({"service.name": SERVICE_NAME, "service.instance.id": instance})
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(root=TraceIdRatioBased(sample_ratio))
    )
    exporter = OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces", timeout=5)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    # Statement text without its parameters: those are users' data.
    Psycopg2Instrumentor().instrument(tracer_provider=provider, skip_dep_check=True)
    _tracer = trace.get_tracer("meetings")
    _enabled = True


def server_interceptors() -> list[Any]:
    """The gRPC server's interceptors: the instrumentation's, when tracing is on."""
    if not _enabled:
        return []
    from opentelemetry.instrumentation.grpc import filters, server_interceptor

    untraced = filters.any_of(*(filters.service_name(name) for name in UNTRACED_SERVICES))
    return [server_interceptor(filter_=filters.negate(untraced))]  # type: ignore[no-untyped-call]


def rpc_ended(code_name: str, code_number: int, server_error: bool) -> None:
    """Note an RPC's status on its span (errors go through abort_with_status, which the
    instrumentation does not see)."""
    if not _enabled:
        return
    span = trace.get_current_span()
    if not span.is_recording():
        return
    span.set_attribute("rpc.grpc.status_code", code_number)
    if server_error:
        span.set_status(Status(StatusCode.ERROR, code_name))


def traceparent() -> str | None:
    """The current span's W3C traceparent (stored with an outbox row), if one is sampled."""
    if not _enabled or not trace.get_current_span().get_span_context().trace_flags.sampled:
        return None
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span of this process's own (e.g. an outbox write) under the current one."""
    if not _enabled:
        yield
        return
    with _tracer.start_as_current_span(name, attributes=attributes):
        yield


@contextlib.contextmanager
def delivery(name: str, enqueued_by: str | None, **attributes: Any) -> Iterator[None]:
    """A delivery attempt's span: a trace of its own (the request that wrote the row ended long
    ago), linked to that request's span when the row kept its traceparent."""
    if not _enabled:
        yield
        return
    links = []
    if enqueued_by:
        parent = trace.get_current_span(_propagator.extract({"traceparent": enqueued_by}))
        if parent.get_span_context().is_valid:
            links.append(Link(parent.get_span_context()))
    token = otel_context.attach(otel_context.Context())  # a new trace, not the loop's
    try:
        with _tracer.start_as_current_span(
            name, kind=SpanKind.CONSUMER, links=links, attributes=attributes
        ):
            yield
    finally:
        otel_context.detach(token)


def log_ids() -> tuple[str, str] | None:
    """The current trace and span ids (hex), for log lines; None outside a recorded span."""
    if not _enabled:
        return None
    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return None
    return f"{found.trace_id:032x}", f"{found.span_id:016x}"
