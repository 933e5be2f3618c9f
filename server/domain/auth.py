"""Users and sessions: password sign-in, guest sign-in, and token authentication.

Tokens are random (256 bits) and stored only as their SHA-256: a leaked table does not
give anyone a session. Passwords are hashed with Argon2id.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import argon2
import peewee

from server.domain import clock, errors, ids, meeting_rules, text
from server.storage import session_rows
from server.storage.database import db
from server.storage.models import Session, User

_hasher = argon2.PasswordHasher()
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
class SessionView:
    id: str
    token: str
    user_id: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(login: str, password: str, email: str = "", full_name: str = "") -> int:
    """Create a (non-guest) user; returns its numeric id."""
    problems = errors.FieldErrors()
    text.check(problems, "login", login)
    text.check(problems, "password", password)
    text.check(problems, "email", email)
    text.check(problems, "full_name", full_name)
    problems.raise_if_any()
    login = login.strip()
    if not login or len(login) > LOGIN_MAX or any(ch.isspace() for ch in login):
        problems.add("login", f"must be 1 to {LOGIN_MAX} characters without spaces")
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        problems.add("password", f"must be {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    email = email.strip()
    if email and not meeting_rules.is_email(email):
        problems.add("email", "is not a valid address")
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
                password_hash=_hasher.hash(password),
                created_at=now,
                updated_at=now,
            )
    except peewee.IntegrityError:
        raise errors.InvalidFields({"login": ["has already been taken"]}) from None
    return int(user.id)


def _start_session(user: User, ttl_seconds: int) -> SessionView:
    token = secrets.token_urlsafe(32)
    now = clock.now()
    expires = now + timedelta(seconds=ttl_seconds)
    with db.atomic():
        session = Session.create(
            id=ids.new_id(),
            user=user.id,
            token_hash=token_hash(token),
            created_at=now,
            updated_at=now,
            expires_at=expires,
        )
        User.update(last_request_at=now).where(User.id == user.id).execute()
        # Housekeeping: expired sessions are of no use to anyone.
        Session.delete().where(Session.expires_at < now - timedelta(days=1)).execute()
    return SessionView(session.id, token, int(user.id), now, now, expires)


def sign_in(login: str, password: str, ttl_seconds: int) -> SessionView:
    """A session for a login and password; Unauthenticated if they do not match."""
    text.require(login=login, password=password)
    user = User.get_or_none(peewee.fn.lower(User.login) == login.strip().lower())
    stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
    try:
        _hasher.verify(stored, password)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        raise errors.Unauthenticated("Unauthorized") from None
    if user is None or not user.password_hash:
        raise errors.Unauthenticated("Unauthorized")
    if _hasher.check_needs_rehash(stored):
        User.update(password_hash=_hasher.hash(password)).where(User.id == user.id).execute()
    return _start_session(user, ttl_seconds)


def sign_in_guest(full_name: str, ttl_seconds: int) -> SessionView:
    """A temporary `is_guest` user and its session, for people joining by link."""
    text.require(full_name=full_name)
    full_name = full_name.strip()
    if not full_name or len(full_name) > FULL_NAME_MAX:
        raise errors.InvalidFields(
            {"full_name": [f"is required for a guest, at most {FULL_NAME_MAX} characters"]}
        )
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
        return _start_session(user, ttl_seconds)


def issue_token(login: str, ttl_seconds: int) -> SessionView:
    """A session for an existing user without their password (operator CLI)."""
    text.require(login=login)
    user = User.get_or_none(peewee.fn.lower(User.login) == login.strip().lower())
    if user is None:
        raise errors.NotFound(f"no user with login {login!r}")
    return _start_session(user, ttl_seconds)


def authenticate(token: str | None) -> Caller:
    """The caller for a session token; Unauthenticated if missing, unknown or expired."""
    if not token or len(token) > 512:
        raise errors.Unauthenticated()
    row = session_rows.by_token_hash(token_hash(token), clock.now())
    if row is None:
        raise errors.Unauthenticated()
    session_id, expires_at, user_id, login, email, is_guest = row
    return Caller(
        user_id=int(user_id),
        login=login,
        email=email,
        is_guest=bool(is_guest),
        session_id=session_id,
        expires_at=expires_at,
    )


def get_session(caller: Caller) -> SessionView:
    session = Session.get_by_id(caller.session_id)
    return SessionView(
        session.id, "", caller.user_id, session.created_at, session.updated_at, session.expires_at
    )


def sign_out(caller: Caller) -> None:
    Session.delete().where(Session.id == caller.session_id).execute()


def caller_for_user(user_id: int) -> Caller:
    """Act as a user without a session (admin API); InvalidFields if there is no such user."""
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise errors.InvalidFields({"user_id": ["no user has this id"]})
    return Caller(user.id, user.login, user.email, user.is_guest, "", clock.now())
