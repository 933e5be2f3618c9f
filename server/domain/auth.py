"""Users and sessions: password sign-in, guest sign-in, and token authentication.

A session belongs to the application and, once someone signs in, to a user: an application
session (app credentials only, before sign-up or sign-in) may sign up and sign in, nothing
else; `POST /login` gives it a user and `DELETE /login` takes the user away again.

Tokens are random (256 bits) and stored only as their SHA-256: a leaked table does not
give anyone a session. Passwords are hashed with Argon2id.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import argon2
import peewee

from server.domain import clock, errors, ids, meeting_rules, text
from server.storage import session_rows
from server.storage.database import db
from server.storage.models import Session, User

_hasher = argon2.PasswordHasher()
# Argon2 takes ~50 ms of a core per hash (it releases the GIL). A burst of sign-ins used to
# take every RPC worker thread, health checks queued behind them past their 1 s timeout, and
# Envoy took the replica out: 503s for everyone (helper-1 measured 3 failed checks of 8 with
# 20-29 sign-ins at once). So at most a core's worth hash at once, a sign-in waits for a slot
# at most HASH_WAIT_SECONDS (well under the health check's timeout), and past that it gets a
# 429: try again in a second.
HASH_SLOTS = max(2, os.cpu_count() or 2)
HASH_WAIT_SECONDS = 0.5
_hash_slots = threading.BoundedSemaphore(HASH_SLOTS)


@contextlib.contextmanager
def _hash_slot() -> Iterator[None]:
    if not _hash_slots.acquire(timeout=HASH_WAIT_SECONDS):
        raise errors.TooManyRequests(1)
    try:
        yield
    finally:
        _hash_slots.release()


def _hash(password: str) -> str:
    with _hash_slot():
        return _hasher.hash(password)


def _verify(stored: str, password: str) -> None:
    with _hash_slot():
        _hasher.verify(stored, password)


# Verified against when the login does not exist, so that a wrong login costs as much time
# as a wrong password and response times do not reveal which logins exist.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

LOGIN_MAX = 100
PASSWORD_MIN = 8
PASSWORD_MAX = 1024
FULL_NAME_MAX = 200


@dataclass(frozen=True)
class Caller:
    """The authenticated user of a request."""

    user_id: int
    login: str
    email: str
    is_guest: bool
    session_id: str
    expires_at: datetime


@dataclass(frozen=True)
class SessionRef:
    """Any live session of a request: the application's, or a user's (`user`)."""

    session_id: str
    expires_at: datetime
    application_id: int | None
    user: Caller | None


@dataclass(frozen=True)
class SessionView:
    id: str
    token: str
    user_id: int  # 0: an application session
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    application_id: int | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    login: str,
    password: str,
    email: str = "",
    full_name: str = "",
    profile: Mapping[str, object] | None = None,
) -> int:
    """Create a (non-guest) user; returns its numeric id. Without a login the email is the
    login. `profile`: more columns, already checked (users.sign_up)."""
    text.require(login=login, password=password, email=email, full_name=full_name)
    login, email = (login.strip() or email.strip()), email.strip()
    problems = _credential_problems(login, password, email)
    if len(full_name) > FULL_NAME_MAX:
        problems.add("full_name", f"must be at most {FULL_NAME_MAX} characters")
    problems.raise_if_any()
    now = clock.now()
    try:
        with db.atomic():
            user = User.create(
                object_id=ids.new_id(),
                login=login,
                email=email,
                full_name=full_name.strip(),
                password_hash=_hash(password),
                created_at=now,
                updated_at=now,
                **(profile or {}),
            )
    except peewee.IntegrityError as exc:
        raise taken(exc) from None
    return int(user.id)


def _credential_problems(login: str, password: str | None, email: str) -> errors.FieldErrors:
    problems = errors.FieldErrors()
    if not login or len(login) > LOGIN_MAX or any(ch.isspace() for ch in login):
        problems.add("login", f"must be 1 to {LOGIN_MAX} characters without spaces")
    if password is not None and not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        problems.add("password", f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    if email and not meeting_rules.is_email(email):
        problems.add("email", "is not a valid address")
    return problems


def taken(exc: peewee.IntegrityError) -> errors.InvalidFields:
    """The 422 for a login or email that another user has (the unique index says which)."""
    field = "email" if "users_email_key" in str(exc) else "login"
    return errors.InvalidFields({field: ["has already been taken"]})


def hash_password(password: str) -> str:
    return _hash(password)


def check_credentials(login: str, password: str | None, email: str) -> None:
    """InvalidFields unless these would do for a new account (users.update)."""
    _credential_problems(login, password, email).raise_if_any()


def _start_session(
    user_id: int | None, ttl_seconds: int, application_id: int | None = None
) -> SessionView:
    """A new session of the user (None: the application's alone) and its token."""
    token = secrets.token_urlsafe(32)
    now = clock.now()
    expires = now + timedelta(seconds=ttl_seconds)
    with db.atomic():
        session = Session.create(
            id=ids.new_id(),
            user=user_id,
            application_id=application_id,
            token_hash=token_hash(token),
            created_at=now,
            updated_at=now,
            expires_at=expires,
        )
        if user_id is not None:
            User.update(last_request_at=now).where(User.id == user_id).execute()
        # Housekeeping: expired sessions are of no use to anyone.
        Session.delete().where(Session.expires_at < now - timedelta(days=1)).execute()
    return SessionView(session.id, token, user_id or 0, now, now, expires, application_id)


def start_application_session(application_id: int, ttl_seconds: int) -> SessionView:
    """A session of the application alone (checked credentials), before anyone signs in."""
    return _start_session(None, ttl_seconds, application_id)


def verified_user(login: str, email: str, password: str) -> User:
    """The user with this login (or email) and password; Unauthenticated if they do not match.

    A wrong login costs as much time as a wrong password (the dummy hash)."""
    text.require(login=login, email=email, password=password)
    if login.strip():
        user = User.get_or_none(peewee.fn.lower(User.login) == login.strip().lower())
    else:
        user = User.get_or_none(
            (peewee.fn.lower(User.email) == email.strip().lower()) & (User.email != "")
        )
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        raise errors.Unauthenticated("Unauthorized") from None
    if user is None or not user.password_hash:
        raise errors.Unauthenticated("Unauthorized")
    if _hasher.check_needs_rehash(stored):
        User.update(password_hash=_hash(password)).where(User.id == user.id).execute()
    return user


def sign_in(
    login: str,
    password: str,
    ttl_seconds: int,
    *,
    email: str = "",
    application_id: int | None = None,
) -> SessionView:
    """A session for a login (or email) and password; Unauthenticated if they do not match."""
    user = verified_user(login, email, password)
    return _start_session(int(user.id), ttl_seconds, application_id)


def sign_in_verified(user_id: int, ttl_seconds: int, application_id: int | None) -> SessionView:
    """A session for a user whose credentials were just verified (verified_user)."""
    return _start_session(user_id, ttl_seconds, application_id)


def log_in(session: SessionRef, user_id: int) -> None:
    """Gives the session (an application's, or another user's) a user whose credentials were
    just verified."""
    now = clock.now()
    with db.atomic():
        Session.update(user=user_id, updated_at=now).where(
            Session.id == session.session_id
        ).execute()
        User.update(last_request_at=now).where(User.id == user_id).execute()


def log_out(session: SessionRef) -> None:
    """The session goes back to being the application's (the token stays valid)."""
    Session.update(user=None, updated_at=clock.now()).where(
        Session.id == session.session_id
    ).execute()


def guest_name(full_name: str) -> str:
    """A guest's full name, cleaned; InvalidFields if it will not do."""
    text.require(full_name=full_name)
    full_name = full_name.strip()
    if not full_name or len(full_name) > FULL_NAME_MAX:
        raise errors.InvalidFields(
            {"full_name": [f"is required for a guest, at most {FULL_NAME_MAX} characters"]}
        )
    return full_name


def sign_in_guest(full_name: str, ttl_seconds: int) -> SessionView:
    """A temporary `is_guest` user and its session, for people joining by link."""
    full_name = guest_name(full_name)
    now = clock.now()
    with db.atomic():
        user = User.create(
            object_id=ids.new_id(),
            login=f"guest-{secrets.token_hex(8)}",
            full_name=full_name,
            is_guest=True,
            created_at=now,
            updated_at=now,
        )
        return _start_session(int(user.id), ttl_seconds)


def issue_token(login: str, ttl_seconds: int) -> SessionView:
    """A session for an existing user without their password (operator CLI)."""
    text.require(login=login)
    user = User.get_or_none(peewee.fn.lower(User.login) == login.strip().lower())
    if user is None:
        raise errors.NotFound(f"no user with login {login!r}")
    return _start_session(int(user.id), ttl_seconds)


NEED_USER = "Forbidden. Need user."


def authenticate_session(token: str | None) -> SessionRef:
    """The live session of a token; Unauthenticated if missing, unknown or expired."""
    if not token or len(token) > 512:
        raise errors.Unauthenticated()
    row = session_rows.by_token_hash(token_hash(token), clock.now())
    if row is None:
        raise errors.Unauthenticated()
    session_id, expires_at, application_id, user_id, login, email, is_guest = row
    user = None
    if user_id is not None:
        user = Caller(int(user_id), login, email, bool(is_guest), session_id, expires_at)
    return SessionRef(session_id, expires_at, application_id, user)


def authenticate(token: str | None) -> Caller:
    """The signed-in user of a token; Unauthenticated as above, and the hosted API's 403 for
    an application session."""
    session = authenticate_session(token)
    if session.user is None:
        raise errors.PermissionDenied(NEED_USER)
    return session.user


def get_session(session: SessionRef, token: str) -> SessionView:
    """The session as GET /session shows it, with the caller's own token (only its hash is
    stored: the token is the one the request carried)."""
    row = Session.get_by_id(session.session_id)
    user_id = 0 if session.user is None else session.user.user_id
    return SessionView(
        row.id,
        token,
        user_id,
        row.created_at,
        row.updated_at,
        row.expires_at,
        row.application_id,
    )


def sign_out(session: SessionRef) -> None:
    Session.delete().where(Session.id == session.session_id).execute()


def caller_for_user(user_id: int) -> Caller:
    """Act as a user without a session (admin API); InvalidFields if there is no such user."""
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise errors.InvalidFields({"user_id": ["no user has this id"]})
    return Caller(user.id, user.login, user.email, user.is_guest, "", clock.now())
