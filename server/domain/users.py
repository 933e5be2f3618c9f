"""User profiles: sign-up, one user, the users/v2 search, and changes to one's own account.

What others see of a user is its public profile: everything but the email, which only the
user itself is shown (the hosted API's users/v2 example prints other users' email as null).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import peewee

from server.domain import auth, clock, errors, meeting_values, text
from server.domain.meeting_values import Page
from server.storage.database import db
from server.storage.models import User

# The profile fields a user sets, beyond login, email, password and full name, with their
# longest value (the hosted API documents none; these fit what the fields are for).
PROFILE_LIMITS = {
    "phone": 50,
    "website": 255,
    "custom_data": 65_536,
    "tag_list": 255,
    "avatar": 1024,
    "facebook_id": 100,
    "twitter_id": 100,
    "external_id": 100,
}
TAGS_MAX = 5  # the hosted API: at most 5 tags per user
TIMEZONE_RANGE = (-720, 840)  # minutes of UTC offset
PAGE_MAX = 100
START_WITH_MIN, START_WITH_PAGE = 4, 5  # the hosted API's start_with rules


@dataclass(frozen=True)
class UserView:
    id: int
    login: str
    email: str | None  # None: not shown to this viewer (or none)
    full_name: str
    phone: str | None
    website: str | None
    created_at: datetime
    updated_at: datetime
    last_request_at: datetime | None
    external_user_id: int | None
    external_id: str | None
    facebook_id: str | None
    twitter_id: str | None
    custom_data: str | None
    avatar: str | None
    user_tags: str | None
    timezone: int | None
    is_guest: bool


@dataclass(frozen=True)
class ProfileInput:
    """What a sign-up or an update sends: None for a field not sent."""

    login: str | None = None
    email: str | None = None
    password: str | None = None
    old_password: str | None = None
    full_name: str | None = None
    timezone: int | None = None
    external_user_id: int | None = None
    texts: Mapping[str, str] = field(default_factory=dict)  # PROFILE_LIMITS' fields


def view(user: User, viewer_id: int | None) -> UserView:
    own = viewer_id == user.id
    return UserView(
        id=int(user.id),
        login=user.login,
        email=(user.email or None) if own else None,
        full_name=user.full_name,
        phone=user.phone,
        website=user.website,
        created_at=user.created_at,
        updated_at=user.updated_at,
        last_request_at=user.last_request_at,
        external_user_id=user.external_user_id,
        external_id=user.external_id,
        facebook_id=user.facebook_id,
        twitter_id=user.twitter_id,
        custom_data=user.custom_data,
        avatar=user.avatar,
        user_tags=user.user_tags,
        timezone=_minutes(user.timezone),
        is_guest=bool(user.is_guest),
    )


def utc_offset(stored: str | None) -> int | None:
    """The UTC offset (minutes) a profile's `timezone` column gives, or None."""
    return _minutes(stored)


def _minutes(stored: str | None) -> int | None:
    try:
        return int(stored) if stored else None
    except ValueError:  # written by hand before sign-up existed
        return None


def _profile_columns(given: ProfileInput) -> dict[str, object]:
    """The profile's columns from `given`, or InvalidFields naming each field that is wrong."""
    problems = errors.FieldErrors()
    columns: dict[str, object] = {}
    for name, value in given.texts.items():
        text.check(problems, name, value)
        if len(value) > PROFILE_LIMITS[name]:
            problems.add(name, f"must be at most {PROFILE_LIMITS[name]} characters")
        columns["user_tags" if name == "tag_list" else name] = value.strip() or None
    tags = [t.strip() for t in given.texts.get("tag_list", "").split(",") if t.strip()]
    if len(tags) > TAGS_MAX:
        problems.add("tag_list", f"must have at most {TAGS_MAX} tags")
    elif "tag_list" in given.texts:
        columns["user_tags"] = ",".join(tags) or None
    if given.timezone is not None:
        low, high = TIMEZONE_RANGE
        if not low <= given.timezone <= high:
            problems.add("timezone", f"must be minutes of UTC offset, {low} to {high}")
        columns["timezone"] = str(given.timezone)
    if given.external_user_id is not None:
        columns["external_user_id"] = given.external_user_id or None
    problems.raise_if_any()
    return columns


def sign_up(given: ProfileInput, count: Callable[[], None] = lambda: None) -> UserView:
    """A new user from a sign-up (login and/or email, password). `count` (a rate limit's
    hit) runs in the same transaction: a refused sign-up is not counted."""
    if not (given.login or "").strip() and not (given.email or "").strip():
        raise errors.InvalidFields({"login": ["or email is required"]})
    if not given.password:
        raise errors.InvalidFields({"password": ["is required"]})
    with db.atomic():
        count()
        user_id = auth.create_user(
            given.login or "",
            given.password,
            given.email or "",
            given.full_name or "",
            _profile_columns(given),
        )
    return view(User.get_by_id(user_id), user_id)


def get(viewer_id: int, user_id: int) -> UserView:
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise errors.NotFound()
    return view(user, viewer_id)


def _own(caller: auth.Caller, user_id: int) -> User:
    user = User.get_or_none(User.id == user_id)
    if user is None:
        raise errors.NotFound()
    if user.id != caller.user_id:
        raise errors.PermissionDenied("You can change only your own account")
    return user


def update(caller: auth.Caller, user_id: int, given: ProfileInput) -> UserView:
    """Changes the caller's own profile: only the fields sent."""
    user = _own(caller, user_id)
    columns = _profile_columns(given)
    columns.update(_credential_columns(user, given))
    if given.full_name is not None:
        text.require(full_name=given.full_name)
        if len(given.full_name) > auth.FULL_NAME_MAX:
            raise errors.InvalidFields(
                {"full_name": [f"must be at most {auth.FULL_NAME_MAX} characters"]}
            )
        columns["full_name"] = given.full_name.strip()
    columns["updated_at"] = clock.now()
    try:
        with db.atomic():
            User.update(columns).where(User.id == user.id).execute()
    except peewee.IntegrityError as exc:
        raise auth.taken(exc) from None
    return view(User.get_by_id(user.id), caller.user_id)


def _credential_columns(user: User, given: ProfileInput) -> dict[str, object]:
    text.require(login=given.login, email=given.email, password=given.password)
    login = user.login if given.login is None else given.login.strip()
    email = user.email if given.email is None else given.email.strip()
    auth.check_credentials(login, given.password, email)
    columns: dict[str, object] = {"login": login, "email": email}
    if given.password is not None:
        if given.old_password is None:
            raise errors.InvalidFields({"old_password": ["is required to set a new password"]})
        auth.verified_user(user.login, "", given.old_password)
        columns["password_hash"] = auth.hash_password(given.password)
    return columns


def delete(caller: auth.Caller, user_id: int) -> None:
    """Deletes the caller's own account; its sessions go with it."""
    user = _own(caller, user_id)
    User.delete().where(User.id == user.id).execute()


@dataclass(frozen=True)
class UserQuery:
    """users/v2: conditions as (column, operator, value) and the page."""

    conditions: tuple[tuple[str, str, object], ...]
    limit: int = PAGE_MAX
    offset: int = 0
    order: tuple[str, bool] = ("id", True)  # (column, ascending)


PRIMARY = ("eq", "in", "start_with")
# users/v2 filters: text fields (eq, in, nin, start_with) and dates (gt, lt, gte, lte).
TEXT_FILTERS = (
    "login", "email", "full_name", "phone", "external_id", "facebook_id", "twitter_id",
    "user_tags",
)  # fmt: skip
DATE_FILTERS = ("created_at", "updated_at", "last_request_at")
STAND_ALONE = ("id", *TEXT_FILTERS)
SORTABLE = ("id", "login", "full_name", "created_at", "updated_at", "last_request_at")


def search(viewer_id: int, query: UserQuery) -> Page[UserView]:
    """The users matching every condition (the hosted API's users/v2 rules)."""
    _check_query(query)
    where = _conditions(query.conditions)
    limit = query.limit
    if any(op == "start_with" for _, op, _ in query.conditions):
        limit = min(limit, START_WITH_PAGE)
    column = getattr(User, query.order[0])
    order = column.asc() if query.order[1] else column.desc()
    total = User.select().where(where).count()
    rows = User.select().where(where).order_by(order, User.id).limit(limit).offset(query.offset)
    return Page([view(u, viewer_id) for u in rows], total, limit, query.offset)


def _check_query(query: UserQuery) -> None:
    problems = errors.FieldErrors()
    if not any(col in STAND_ALONE and op in PRIMARY for col, op, _ in query.conditions):
        needed = f"at least one of {', '.join(STAND_ALONE)} with eq, in or start_with is needed"
        problems.add("base", needed)
    for col, op, value in query.conditions:
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                text.check(problems, f"{col}[{op}]", item)
        if op == "start_with" and len(str(value)) < START_WITH_MIN:
            problems.add(f"{col}[start_with]", f"must be at least {START_WITH_MIN} characters")
    problems.raise_if_any()


def _conditions(conditions: tuple[tuple[str, str, object], ...]) -> peewee.Expression:
    """All of `conditions` (there is at least one: _check_query)."""
    parts = [_condition(getattr(User, col), col, op, value) for col, op, value in conditions]
    return functools.reduce(operator.and_, parts)


def _has_tag(column: peewee.ColumnBase, tag: str) -> peewee.Expression:
    # user_tags is comma-separated: ",a,b," holds ",a," exactly (no LIKE wildcards).
    return peewee.fn.strpos(peewee.Value(",").concat(column).concat(","), f",{tag},") > 0


def _condition(column: peewee.ColumnBase, col: str, op: str, value: Any) -> peewee.Expression:
    if col == "user_tags":  # matches when the user has any one of the tags
        tags = value if isinstance(value, list) else [value]
        has = functools.reduce(operator.or_, [_has_tag(column, str(t)) for t in tags])
        return ~has if op == "nin" else has
    if col in ("login", "email") and op in ("eq", "in", "nin"):
        column, value = peewee.fn.lower(column), _lower(value)
    if op == "eq":
        equal: peewee.Expression = column == value
        return equal
    if op == "in":
        return column.in_(value)
    if op == "nin":
        return column.not_in(value)
    if op == "start_with":
        return column.startswith(value)
    compared: peewee.Expression = meeting_values.ORDERINGS[op](column, value)
    return compared


def _lower(value: object) -> object:
    return [str(v).lower() for v in value] if isinstance(value, list) else str(value).lower()
