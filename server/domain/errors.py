"""Domain errors. Each carries the gRPC status it maps to; transport.rpc maps them in one place."""

from __future__ import annotations

import grpc


class DomainError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(DomainError):
    code = grpc.StatusCode.UNAUTHENTICATED

    def __init__(self, message: str = "Required session does not exist") -> None:
        super().__init__(message)


class PermissionDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class NotFound(DomainError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, message: str = "The resource wasn't found") -> None:
        super().__init__(message)


class TooManyRequests(DomainError):
    """A rate limit was reached (REST: 429 with Retry-After)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, retry_after_seconds: int) -> None:
        super().__init__(f"Too many requests, try again in {retry_after_seconds} s")
        self.retry_after_seconds = retry_after_seconds


class Unavailable(DomainError):
    code = grpc.StatusCode.UNAVAILABLE


class Cancelled(DomainError):
    """The client went away in the middle of the call (e.g. an interrupted upload)."""

    code = grpc.StatusCode.CANCELLED


class InvalidFields(DomainError):
    """One or more fields are invalid: a list of messages per field (REST: 422)."""

    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = {name: list(messages) for name, messages in fields.items()}
        summary = "; ".join(f"{name}: {', '.join(msgs)}" for name, msgs in self.fields.items())
        super().__init__(summary or "invalid request")


class BadRequest(DomainError):
    """The request is malformed as a whole (REST: 400)."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class FieldErrors:
    """Collects messages per field; `raise_if_any` raises InvalidFields with all of them.

    At most MESSAGES_PER_FIELD messages are kept per field (then one saying how many more),
    so that a request with thousands of bad entries gets an error that still fits in
    response headers and trailers."""

    MESSAGES_PER_FIELD = 10

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}
        self._more: dict[str, int] = {}

    def add(self, field: str, message: str) -> None:
        messages = self.fields.setdefault(field, [])
        if len(messages) < self.MESSAGES_PER_FIELD:
            messages.append(message)
            return
        self._more[field] = self._more.get(field, 0) + 1
        summary = f"and {self._more[field]} more problems like these"
        if len(messages) == self.MESSAGES_PER_FIELD:
            messages.append(summary)
        else:
            messages[-1] = summary

    def __bool__(self) -> bool:
        return bool(self.fields)

    def raise_if_any(self) -> None:
        if self.fields:
            raise InvalidFields(self.fields)
