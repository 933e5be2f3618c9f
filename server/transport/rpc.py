"""The one place where RPCs get their database connection, caller and error mapping.

`@rpc.handler()` wraps a servicer method: it sets the request id, opens the connection for the call,
authenticates the `cb-token` metadata (unless `authenticated=False`), and turns every
exception into a gRPC status. Domain errors keep their status and message; database outages
become UNAVAILABLE; anything else is logged with the request id and returned as INTERNAL
without its text. Each error carries the google.rpc details a gRPC client acts on (ErrorInfo
with its reason, BadRequest with field paths, RetryInfo; docs/grpc.md) and, as trailing
metadata, the HTTP status and JSON body that the REST gateway returns for it
(`cb-http-status`, `cb-error-body`).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import logging
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any, TypeVar, cast

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status
from playhouse.pool import MaxConnectionsExceeded

from server import logs
from server.domain import applications, auth, errors, service_keys
from server.storage.database import CONNECTION_ERRORS, db
from server.storage.recording_files import FileMissing, StorageUnavailable
from server.telemetry import activity, metrics, tracing

log = logging.getLogger(__name__)

Response = TypeVar("Response")
# The protos' package: a servicer class is named after its service (MeetingService, ...).
PACKAGE = "meetings.v1"


def _metadata(context: grpc.ServicerContext) -> dict[str, str]:
    return {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
    }


# Extra response headers a servicer method asks for (e.g. a download's file name).
extra_headers: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "extra_headers", default=()
)


# Who a call is from: a signed-in user, any session (an application's included), or no one.
Caller = auth.Caller | auth.SessionRef | None


def _response_headers(request_id: str, caller: Caller) -> tuple[tuple[str, str], ...]:
    headers = [("x-request-id", request_id), *extra_headers.get()]
    if caller is not None:
        # The Flutter SDK reads this to renew its session in time.
        expires = caller.expires_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        headers.append(("cb-token-expirationdate", expires))
    return tuple(headers)


def http_error(exc: errors.DomainError) -> tuple[int, dict[str, Any]]:
    """The REST status and body for a domain error (the hosted API's shapes)."""
    if isinstance(exc, errors.Unauthenticated):
        return 401, {"errors": {"base": [exc.message]}}
    if isinstance(exc, errors.PermissionDenied):
        return 403, {"errors": {"base": [exc.message]}}
    if isinstance(exc, errors.NotFound):
        return 404, {"errors": ["The resource wasn't found"]}
    if isinstance(exc, errors.InvalidFields):
        return 422, {"errors": exc.fields}
    if isinstance(exc, errors.BadRequest):
        return 400, {"errors": [exc.message]}
    if isinstance(exc, errors.TooManyRequests):
        return 429, {"errors": {"base": [exc.message]}}
    if isinstance(exc, errors.Unavailable):
        return 503, {"errors": [exc.message]}
    if isinstance(exc, errors.Cancelled):
        return 400, {"errors": [exc.message]}
    return 500, {"errors": ["Internal error"]}


# ErrorInfo.domain: the service that every reason belongs to (AIP-193).
ERROR_DOMAIN = "meetings-api"
# RetryInfo of UNAVAILABLE: about as long as a replica's restart or a database failover takes.
UNAVAILABLE_RETRY = duration_pb2.Duration(seconds=1)


def _details(domain: errors.DomainError) -> list[Message]:
    """What a client can act on (AIP-193): always the reason; the fields at fault; when to
    retry, if retrying can help."""
    details: list[Message] = [
        error_details_pb2.ErrorInfo(reason=domain.reason, domain=ERROR_DOMAIN)
    ]
    if isinstance(domain, errors.InvalidFields):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(field=path, description=text)
                    for path, text in domain.violations
                ]
            )
        )
    if isinstance(domain, errors.TooManyRequests):
        wait = duration_pb2.Duration(seconds=domain.retry_after_seconds)
        details.append(error_details_pb2.RetryInfo(retry_delay=wait))
    elif isinstance(domain, errors.Unavailable):
        details.append(error_details_pb2.RetryInfo(retry_delay=UNAVAILABLE_RETRY))
    return details


@contextlib.contextmanager
def request_field(name: str) -> Iterator[None]:
    """Field errors raised inside are about the request's field `name` (`meeting`): their
    paths start there (`meeting.attendees[1].email`)."""
    try:
        yield
    except errors.InvalidFields as exc:
        raise exc.within(name) from None


def _status(exc: BaseException, request_id: str) -> grpc.Status:
    if isinstance(exc, errors.DomainError):
        domain = exc
    elif isinstance(exc, (*CONNECTION_ERRORS, MaxConnectionsExceeded)):
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        domain = errors.Unavailable(
            "The service is temporarily unavailable, try again", reason="DATABASE_UNAVAILABLE"
        )
    elif isinstance(exc, StorageUnavailable):
        log.warning("recording store unavailable", extra={"error": str(exc)})
        domain = errors.Unavailable(
            "The recording store is temporarily unavailable, try again",
            reason="STORAGE_UNAVAILABLE",
        )
    elif isinstance(exc, FileMissing):
        # A row whose file is gone: lost, or written to another machine's disk.
        log.warning("recording file missing", extra={"key": str(exc)})
        domain = errors.NotFound()
    else:
        log.exception("unhandled error")
        domain = errors.DomainError(f"Internal error (request id {request_id})", "INTERNAL")
        domain.code = grpc.StatusCode.INTERNAL
    http_status, body = http_error(domain)
    status = status_pb2.Status(code=domain.code.value[0], message=domain.message)
    for detail in _details(domain):
        status.details.add().Pack(detail)
    assert status.code != code_pb2.OK
    converted = rpc_status.to_status(status)
    trailing = (
        *converted.trailing_metadata,
        ("x-request-id", request_id),
        ("cb-http-status", str(http_status)),
        ("cb-error-body", json.dumps(body, separators=(",", ":"))),
    )
    if isinstance(domain, errors.TooManyRequests):
        trailing = (*trailing, ("retry-after", str(domain.retry_after_seconds)))
    return _Status(converted.code, converted.details, trailing)


class _Status(grpc.Status):
    def __init__(self, code: grpc.StatusCode, details: str, trailing: tuple[Any, ...]) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing


class _Malformed:
    """Stands for a request message that did not parse (see `tolerant`)."""


MALFORMED: Any = _Malformed()
_MALFORMED_TEXT = "The request is not a valid message (string fields must be UTF-8)"


def tolerant(server: grpc.Server) -> grpc.Server:
    """`server` for the generated add_*Servicer_to_server functions (see _Tolerant)."""
    return cast(grpc.Server, _Tolerant(server))


class _Tolerant:
    """The server as the generated add_*Servicer_to_server functions see it, registering each
    method with a request parser that does not raise: a message that does not parse (invalid
    UTF-8 in a string field) becomes MALFORMED, which `handler` answers with INVALID_ARGUMENT.
    Left to grpcio, it is an INTERNAL error and a traceback in the log for every such call."""

    def __init__(self, server: grpc.Server) -> None:
        self._server: Any = server  # add_registered_method_handlers is missing from the stubs

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        pass  # built from the same methods: registered (tolerant) below

    def add_registered_method_handlers(self, service: str, methods: dict[str, Any]) -> None:
        wrapped = {
            name: method._replace(request_deserializer=_parse_or_mark(method.request_deserializer))
            for name, method in methods.items()
        }
        self._server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, wrapped),)
        )
        self._server.add_registered_method_handlers(service, wrapped)


def _parse_or_mark(parse: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    def parse_or_mark(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return MALFORMED

    return parse_or_mark


def parsed(message: Any) -> Any:
    """A streamed request message, or BadRequest if it did not parse."""
    if message is MALFORMED:
        raise errors.BadRequest(_MALFORMED_TEXT)
    return message


def _begin(context: grpc.ServicerContext) -> tuple[dict[str, str], str]:
    metadata = _metadata(context)
    request_id = metadata.get("x-request-id", "")[:64] or uuid.uuid4().hex
    logs.request_id.set(request_id)
    return metadata, request_id


USER, SESSION, SIGN_UP, MEDIA, ADMIN, NONE = "user", "session", "sign-up", "media", "admin", "none"
# Where each kind of credential arrives (gRPC metadata; REST headers arrive lower-cased).
_CREDENTIAL_HEADERS = {MEDIA: "cb-service-key", ADMIN: "cb-administration-api-key"}


def _authenticate(credential: str, metadata: dict[str, str]) -> Caller:
    if credential == USER:
        return auth.authenticate(metadata.get("cb-token"))
    if credential == SESSION or (credential == SIGN_UP and "cb-token" in metadata):
        return auth.authenticate_session(metadata.get("cb-token"))
    if credential == SIGN_UP:  # the JS SDK signs up with CB-AuthKey when it has no session
        applications.check_key(metadata.get("cb-authkey", ""))
    if credential in _CREDENTIAL_HEADERS:
        service_keys.check(credential, metadata.get(_CREDENTIAL_HEADERS[credential]))
    return None


def token(context: grpc.ServicerContext) -> str:
    """The session token the call carried."""
    return _metadata(context).get("cb-token", "")


def client_address(context: grpc.ServicerContext) -> str:
    """The address of the client: the last X-Forwarded-For entry (the one Envoy appended: what
    clients send before it is not trusted), else the gRPC peer (a direct call)."""
    forwarded = _metadata(context).get("x-forwarded-for", "")
    if forwarded.strip():
        return forwarded.split(",")[-1].strip()[:64]
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        return urllib.parse.unquote(rest.rsplit(":", 1)[0]).strip("[]")
    return peer[:64]


def handler(
    *,
    authenticated: bool = True,
    stream: bool = False,
    credential: str | None = None,
    live: bool = False,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorate a servicer method `(self, request, context, caller)`; see the module doc.

    `credential`: "user" (cb-token of a signed-in user; the default unless
    authenticated=False), "session" (any session's cb-token, an application's included: the
    caller is an auth.SessionRef), "sign-up" (as "session", or the application's cb-authkey),
    "media" (cb-service-key), "admin" (cb-administration-api-key) or "none". `stream`: the method
    returns an iterable, materialized in the connection before the first message. `live`: a
    long-lived stream; the method checks what it must (in the connection) and then returns an
    iterator, consumed outside it: only authentication holds a connection, errors it raises
    come before the first message, and the iterator opens its own connection per pass.
    """
    kind = credential or (USER if authenticated else NONE)

    def decorate(method: Callable[..., Any]) -> Callable[..., Any]:
        materialize = stream and not live
        observed = Observed(method, stream or live, live)

        def unary(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
            began = observed.begin()
            try:
                return _call(method, kind, materialize, self, request, context)
            finally:
                observed.end(began, context)

        def streaming(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            began = observed.begin()
            try:
                yield from _call(method, kind, materialize, self, request, context)
            finally:
                observed.end(began, context)

        def live_stream(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            began = observed.begin()
            try:
                messages = _call(method, kind, materialize, self, request, context)
                request_id = logs.request_id.get()
                try:
                    yield from messages
                except Exception as exc:
                    context.abort_with_status(_status(exc, request_id))
            finally:
                observed.end(began, context)

        chosen = live_stream if live else streaming if stream else unary
        return functools.wraps(method)(chosen)

    return decorate


class Observed:
    """One method's metrics (telemetry.metrics) and activity (telemetry.activity), with its
    labels resolved once, when it is decorated."""

    def __init__(self, method: Callable[..., Any], stream: bool, live: bool) -> None:
        servicer, _, name = method.__qualname__.partition(".")
        self._labels = ("server_stream" if stream else "unary", f"{PACKAGE}.{servicer}", name)
        self._live = live
        self._started = metrics.RPC_STARTED.labels(*self._labels)
        self._seconds = metrics.RPC_SECONDS.labels(*self._labels)
        self._handled: dict[grpc.StatusCode, Any] = {}

    def begin(self) -> float:
        if metrics.enabled:
            self._started.inc()
        return time.perf_counter()

    def end(self, began: float, context: Any) -> None:  # code() is missing from grpc's stubs
        seconds = time.perf_counter() - began
        # What abort_with_status set; None: none was (a return, or the client went away).
        code = context.code() or (
            grpc.StatusCode.OK if context.is_active() else grpc.StatusCode.CANCELLED
        )
        if metrics.enabled:
            handled = self._handled.get(code)
            if handled is None:
                handled = self._handled[code] = metrics.RPC_HANDLED.labels(*self._labels, code.name)
            handled.inc()
            self._seconds.observe(seconds)
        activity.request(code.name, None if self._live else seconds)
        tracing.rpc_ended(code.name, code.value[0], code.name in activity.SERVER_ERROR_CODES)


def _call(
    method: Callable[..., Any],
    kind: str,
    materialize: bool,
    self: Any,
    request: Any,
    context: grpc.ServicerContext,
) -> Any:
    """Run `method` on a connection of its own as the authenticated caller; on any error,
    abort the call with the error's status (abort_with_status raises)."""
    metadata, request_id = _begin(context)
    extra_headers.set(())
    try:
        parsed(request)
        with db.connection_context():
            caller = _authenticate(kind, metadata)
            result = method(self, request, context, caller)
            if materialize:
                # Inside the connection, so that every error comes before the first message
                # (after it, REST clients see a 200).
                result = list(result)
    except Exception as exc:
        context.abort_with_status(_status(exc, request_id))
    context.send_initial_metadata(_response_headers(request_id, caller))
    return result
