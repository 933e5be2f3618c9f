"""The one application this service serves, and the credentials the SDKs create sessions with.

The hosted API serves many applications; an app built on it is configured with an application
id, an auth key (sent as is by the JS SDK) and an auth secret (older and Flutter SDKs sign
their session requests with it: HMAC-SHA1 over the sorted parameters). Here there is one row,
made with random credentials by the migration that added it (id 1) and shown or changed with
`meetings-admin app`. All replicas read it from the database, so a change applies everywhere
at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from server.domain import clock, errors
from server.storage.models import Application

DEFAULT_ID = 1
# How far a signed request's timestamp may be from our clock (the hosted API's window is not
# documented; a day covers devices with a wrong time zone, and the nonce is not remembered).
SIGNATURE_WINDOW_SECONDS = 86_400


@dataclass(frozen=True)
class Credentials:
    id: int
    auth_key: str
    auth_secret: str


def _new_key() -> str:
    return secrets.token_urlsafe(12)


def _existing() -> Credentials | None:
    """The credentials if there are any (checking a request makes none)."""
    row = Application.select().order_by(Application.id).first()
    return None if row is None else Credentials(int(row.id), row.auth_key, row.auth_secret)


def current() -> Credentials:
    """The application's credentials (the first migration makes them; made again, race-free,
    if the row was removed)."""
    found = _existing()
    if found is not None:
        return found
    now = clock.now()
    Application.insert(
        id=DEFAULT_ID,
        auth_key=_new_key(),
        auth_secret=secrets.token_urlsafe(18),
        created_at=now,
        updated_at=now,
    ).on_conflict_ignore().execute()
    made = _existing()
    assert made is not None
    return made


def configure(app_id: int | None = None, rotate: bool = False) -> Credentials:
    """Change the application id (as the apps already built against it expect), or make new
    auth key and secret (apps with the old ones can no longer create sessions)."""
    before = current()
    values: dict[str, object] = {"updated_at": clock.now()}
    if app_id is not None:
        if not 1 <= app_id <= 2**31 - 1:
            raise errors.InvalidFields({"id": ["must be a positive whole number"]})
        values["id"] = app_id
    if rotate:
        values.update(auth_key=_new_key(), auth_secret=secrets.token_urlsafe(18))
    Application.update(values).where(Application.id == before.id).execute()
    return current()


def check(application_id: int, auth_key: str, signed: Mapping[str, str] | None) -> int:
    """The application id if these are its credentials, else the hosted API's refusal (422).

    `signed`: the request's parameters when it carries a signature (older SDKs), as the
    client signed them (flat keys such as user[login]); else the auth key alone is checked."""
    app = _existing()
    if app is None or application_id != app.id:
        raise errors.InvalidFields({"base": ["No application found"]})
    if not hmac.compare_digest(auth_key.encode(), app.auth_key.encode()):
        raise errors.InvalidFields({"base": ["Unexpected auth key"]})
    if signed is not None:
        _check_signature(signed, app.auth_secret)
    return app.id


def check_key(auth_key: str) -> None:
    """For a sign-up without a session (the JS SDK's CB-AuthKey header): Unauthenticated
    without a key, the hosted API's refusal for a wrong one."""
    if not auth_key:
        raise errors.Unauthenticated()
    app = _existing()
    if app is None or not hmac.compare_digest(auth_key.encode(), app.auth_key.encode()):
        raise errors.InvalidFields({"base": ["Unexpected auth key"]})


def _check_signature(signed: Mapping[str, str], secret: str) -> None:
    given = signed.get("signature", "")
    fields = {key: value for key, value in signed.items() if key != "signature"}
    message = "&".join(f"{key}={fields[key]}" for key in sorted(fields))
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha1).hexdigest()
    if not hmac.compare_digest(given.lower().encode(), expected.encode()):
        raise errors.InvalidFields({"base": ["Unexpected signature"]})
    try:
        timestamp = int(fields.get("timestamp", ""))
    except ValueError:
        timestamp = 0
    if abs(clock.now().timestamp() - timestamp) > SIGNATURE_WINDOW_SECONDS:
        raise errors.InvalidFields({"base": ["Unexpected timestamp"]})
