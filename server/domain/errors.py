"""Domain errors. Each carries the gRPC status it maps to and a stable reason (gRPC clients get
it as google.rpc.ErrorInfo; docs/grpc.md lists them); transport.rpc maps them in one place."""

from __future__ import annotations

import grpc


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    # UPPER_SNAKE_CASE, never changed once published: clients branch on it.
    reason = "UNKNOWN"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"

    def __init__(self, message: str = "Required session does not exist") -> None:
        super().__init__(message)


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"

    def __init__(self, message: str = "The resource wasn't found") -> None:
        super().__init__(message)


class TooManyRequests(DomainError):
    """A rate limit was reached (REST: 429 with Retry-After)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RATE_LIMITED"

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"Too many requests, try again in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DomainError):
    """A part the call needs is down for now (the reason says which); retrying may work."""

    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class Cancelled(DomainError):
    """The client went away in the middle of the call (e.g. an interrupted upload)."""

    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


# REST keys whose field has another name in protos/ (a violation's path names the field);
# `base` is the request as a whole.
_FIELD_NAMES = {"_id": "id", "base": ""}


def field_path(key: str) -> str:
    """The path of the field a REST key names (`_id` -> `id`)."""
    return _FIELD_NAMES.get(key, key)


class InvalidFields(DomainError):
    """One or more fields are invalid: a list of messages per REST key (REST: 422), and the
    same messages as (path, message) violations for gRPC, each path naming the element
    (`attendees[1].email`; AIP-193)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_FIELDS"

    def __init__(
        self,
        fields: dict[str, list[str]],
        violations: list[tuple[str, str]] | None = None,
    ) -> None:
        self.fields = {name: list(messages) for name, messages in fields.items()}
        self.violations = violations or [
            (field_path(name), message)
            for name, messages in self.fields.items()
            for message in messages
        ]
        summary = "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in self.fields.items())
        super().__init__(summary or "invalid request")

    def within(self, field: str) -> InvalidFields:
        """The same errors, their paths starting at the request's `field` (`meeting.name`)."""
        paths = [(f"{field}.{path}" if path else field, text) for path, text in self.violations]
        return InvalidFields(self.fields, paths)


class BadRequest(DomainError):
    """The request is malformed as a whole (REST: 400)."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "MALFORMED_REQUEST"


class FieldErrors:
    """Collects messages per field; `raise_if_any` raises InvalidFields with all of them.

    At most MESSAGES_PER_FIELD messages are kept per field (then one saying how many more),
    so that a request with thousands of bad entries gets an error that still fits in
    response headers and trailers."""

    MESSAGES_PER_FIELD = 10

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self.violations: list[tuple[str, str]] = []
        self._more: dict[str, int] = {}
        self._summary_at: dict[str, int] = {}  # where a field's summary is in violations

    def add(
        self, field: str, message: str, path: str | None = None, description: str | None = None
    ) -> None:
        """A problem with the REST key `field`. `path` names the element, if not the field, and
        `description` is the violation's text where REST's `message` names the element too."""
        messages = self.fields.setdefault(field, [])
        if len(messages) < self.MESSAGES_PER_FIELD:
            messages.append(message)
            self.violations.append((path or field_path(field), description or message))
            return
        self._more[field] = self._more.get(field, 0) + 1
        summary = f"and {self._more[field]} more problems like these"
        if len(messages) == self.MESSAGES_PER_FIELD:
            messages.append(summary)
            self._summary_at[field] = len(self.violations)
            self.violations.append((field_path(field), summary))
        else:
            messages[-1] = summary
            self.violations[self._summary_at[field]] = (field_path(field), summary)

    def __bool__(self) -> bool:
        return bool(self.fields)

    def raise_if_any(self) -> None:
        if self.fields:
            raise InvalidFields(self.fields, self.violations)
