"""Recordings: ingest from the media server, list for participants, signed downloads, removal."""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee as pw

from server.domain import auth, clock, download_links, errors, ids, meetings, service_keys
from server.storage.database import db
from server.storage.models import Meeting, Recording
from server.storage.recording_files import Storage, StorageUnavailable

log = logging.getLogger(__name__)

MAX_PARTICIPANTS = 1000
# Keys looked up per query while sweeping (a listing page of the object store).
_SWEEP_BATCH = 1000
# type/subtype, as a browser will need it to play the file.
_CONTENT_TYPE = re.compile(r"^(audio|video)/[a-z0-9][a-z0-9.+-]{0,60}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class RecordingView:
    id: str
    meeting_id: str
    participant_ids: tuple[int, ...]
    duration: float
    size_bytes: int
    file_uid: str
    content_type: str
    created_at: datetime
    updated_at: datetime

    @property
    def size_mb(self) -> float:
        return round(self.size_bytes / (1024 * 1024), 2)


@dataclass(frozen=True)
class UploadMetadata:
    meeting_id: str
    participant_ids: tuple[int, ...]
    duration: float
    content_type: str
    sha256: str = ""
    # Bytes the media server says it sends: what makes a complete upload recognisable.
    size: int = 0


@dataclass(frozen=True)
class Download:
    storage_key: str
    size: int
    content_type: str
    file_name: str


def _view(row: Any) -> RecordingView:
    return RecordingView(
        id=row.id,
        meeting_id=row.meeting_id,
        participant_ids=tuple(row.participant_ids or ()),
        duration=float(row.duration),
        size_bytes=int(row.size_bytes),
        file_uid=row.file_uid,
        content_type=row.content_type,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def validate(metadata: UploadMetadata) -> None:
    problems = errors.FieldErrors()
    if not ids.is_valid(metadata.meeting_id):
        problems.add("meeting_id", "must be a meeting _id (24 hex characters)")
    if not math.isfinite(metadata.duration) or metadata.duration < 0:
        problems.add("duration", "must be a number of seconds, not negative")
    if len(metadata.participant_ids) > MAX_PARTICIPANTS:
        problems.add("participants_ids", f"must list at most {MAX_PARTICIPANTS} users")
    if any(pid <= 0 for pid in metadata.participant_ids):
        problems.add("participants_ids", "must be positive user ids")
    if metadata.content_type and not _CONTENT_TYPE.match(metadata.content_type):
        problems.add("content_type", "must be an audio/... or video/... media type")
    if metadata.sha256 and not _SHA256.match(metadata.sha256):
        problems.add("sha256", "must be 64 lowercase hex characters")
    if metadata.size <= 0:
        problems.add("size", "is required: the file's length in bytes")
    problems.raise_if_any()


def ingest(
    storage: Storage, metadata: UploadMetadata, chunks: Iterable[bytes], max_bytes: int
) -> RecordingView:
    """Store a finished recording. Until the last chunk is written, checked against the
    announced size and checksum, committed and recorded, nothing is visible; on any failure
    the partial file is removed."""
    validate(metadata)
    if metadata.size > max_bytes:
        raise errors.InvalidFields({"size": [f"the file exceeds {max_bytes} bytes"]})
    if not Meeting.select().where(Meeting.id == metadata.meeting_id).exists():
        raise errors.NotFound()
    file_uid = f"{uuid.uuid4()}_{metadata.meeting_id}"
    upload = storage.begin(file_uid)
    size = 0
    try:
        for chunk in chunks:
            size += len(chunk)
            if size > metadata.size:
                raise errors.InvalidFields({"size": ["more bytes arrived than announced"]})
            upload.write(chunk)
        if size < metadata.size:
            raise errors.Cancelled(f"The upload ended after {size} of {metadata.size} bytes")
        if metadata.sha256 and upload.written().sha256 != metadata.sha256:
            raise errors.InvalidFields({"sha256": ["does not match the bytes received"]})
        stored = upload.commit()
    except BaseException:
        upload.abort()
        raise
    try:
        now = clock.now()
        with db.atomic():
            row = Recording.create(
                id=ids.new_id(),
                meeting=metadata.meeting_id,
                participant_ids=list(metadata.participant_ids),
                duration=metadata.duration,
                size_bytes=stored.size,
                file_uid=file_uid,
                sha256=stored.sha256,
                content_type=metadata.content_type or "video/mp4",
                created_at=now,
                updated_at=now,
            )
    except BaseException:
        storage.delete(file_uid)
        raise
    return _view(row)


def _of_meeting(meeting_id: str) -> list[RecordingView]:
    rows = (
        Recording.select()
        .where(Recording.meeting == meeting_id)
        .order_by(Recording.created_at, Recording.id)
    )
    return [_view(row) for row in rows]


def by_ids(recording_ids: list[str]) -> list[RecordingView]:
    """The recordings that still exist among `recording_ids`, oldest first."""
    rows = (
        Recording.select()
        .where(Recording.id.in_(recording_ids))
        .order_by(Recording.created_at, Recording.id)
    )
    return [_view(row) for row in rows]


def stored() -> tuple[int, int]:
    """How many recordings are stored, and their bytes (for /metrics)."""
    count, size = Recording.select(
        pw.fn.count(Recording.id), pw.fn.sum(Recording.size_bytes)
    ).scalar(as_tuple=True)
    return int(count), int(size or 0)


def list_for(caller: auth.Caller, meeting_id: str) -> list[RecordingView]:
    """A meeting's recordings, for its host and attendees (NotFound for anyone else)."""
    meetings.require_participant(caller, meeting_id)
    return _of_meeting(meeting_id)


def list_any(meeting_id: str) -> list[RecordingView]:
    """A meeting's recordings, for operators (admin API)."""
    if (
        not ids.is_valid(meeting_id)
        or not Meeting.select().where(Meeting.id == meeting_id).exists()
    ):
        raise errors.NotFound()
    return _of_meeting(meeting_id)


def delete_all(storage: Storage, meeting_id: str) -> int:
    """Remove a meeting's recordings, rows and files; returns how many there were."""
    found = list_any(meeting_id)
    with db.atomic():
        Recording.delete().where(Recording.meeting == meeting_id).execute()
    remove_files(storage, [recording.file_uid for recording in found])
    return len(found)


def remove_files(storage: Storage, keys: list[str]) -> None:
    """Delete the files of recordings whose rows are gone. With the store unreachable, what
    is left is the sweeper's (the rows, and so the recordings, are gone either way)."""
    for key in keys:
        try:
            storage.delete(key)
        except StorageUnavailable:
            log.warning("recording file left for the sweeper", extra={"key": key})


def end_call(meeting_id: str) -> None:
    """The media server says the meeting's call is over."""
    if not ids.is_valid(meeting_id):
        raise errors.NotFound()
    updated = (
        Meeting.update(call_ended_at=pw.fn.coalesce(Meeting.call_ended_at, clock.now()))
        .where(Meeting.id == meeting_id)
        .execute()
    )
    if not updated:
        raise errors.NotFound()


_EXTENSIONS = {
    "video/mp4": "mp4",
    "video/webm": "webm",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/x-wav": "wav",
}


def file_name(file_uid: str, content_type: str) -> str:
    """The name a download is saved under."""
    return f"{file_uid}.{_EXTENSIONS.get(content_type, 'bin')}"


@dataclass(frozen=True)
class DownloadLinks:
    """Expiring download links: the store's own pre-signed links where it has them (object
    storage), else links signed here that point at the gateway (PUBLIC_BASE_URL)."""

    storage: Storage
    base_url: str
    ttl_seconds: int

    def urls(self, views: Iterable[RecordingView]) -> list[str]:
        secret: bytes | None = None
        found = []
        for view in views:
            name = file_name(view.file_uid, view.content_type)
            url = self.storage.signed_url(view.file_uid, self.ttl_seconds, name, view.content_type)
            if url is None:
                # One read of the signing secret for all the links of a list.
                secret = secret or service_keys.secret(service_keys.DOWNLOAD_SIGNING)
                url = download_links.make_url(self.base_url, secret, view.id, self.ttl_seconds)
            found.append(url)
        return found


def open_download(recording_id: str, expires: int, signature: str) -> Download:
    """What a signed link points at; PermissionDenied if expired, tampered or foreign."""
    # No secret yet: no link was ever made, so none is valid.
    secret = service_keys.existing_secret(service_keys.DOWNLOAD_SIGNING)
    if (
        secret is None
        or not ids.is_valid(recording_id)
        or not download_links.is_valid(secret, recording_id, expires, signature)
    ):
        raise errors.PermissionDenied("The download link is invalid or has expired")
    row = Recording.get_or_none(Recording.id == recording_id)
    if row is None:
        raise errors.NotFound()
    return Download(
        row.file_uid,
        int(row.size_bytes),
        row.content_type,
        file_name(row.file_uid, row.content_type),
    )


def read(storage: Storage, download: Download) -> Iterator[bytes]:
    return storage.read(download.storage_key)


def sweep(storage: Storage, grace_seconds: float) -> int:
    """Remove what crashes left in the store: files no recording row names and partial
    uploads, once older than `grace_seconds` (an upload in progress is younger)."""

    def known(keys: list[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(keys), _SWEEP_BATCH):
            batch = keys[start : start + _SWEEP_BATCH]
            rows = Recording.select(Recording.file_uid).where(Recording.file_uid.in_(batch))
            found.update(row.file_uid for row in rows)
        return found

    cutoff = clock.now() - timedelta(seconds=grace_seconds)
    return storage.sweep(known, cutoff)
