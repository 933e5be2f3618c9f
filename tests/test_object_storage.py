"""Recordings in an S3-compatible object store (S3_BUCKET), against a real S3 HTTP server on a
loopback port (tests/object_store.py): multipart uploads that are invisible until complete,
the store's own pre-signed download links, deletes, the sweeper, and an unreachable store.

The S3 server (moto) serves pre-signed GETs but checks neither their signature nor their
expiry (a tampered or expired link is served: measured), so what AWS S3, MinIO and the rest
enforce is checked here in the link itself: its host, credential scope and lifetime.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from meetings.v1 import admin_pb2 as apb
from meetings.v1 import admin_pb2_grpc, meetings_pb2, meetings_pb2_grpc, recordings_pb2_grpc
from meetings.v1 import recordings_pb2 as rpb
from server import app
from server.domain import download_links, recordings, service_keys
from server.storage.models import Recording
from server.storage.recording_files import FilesystemStorage
from server.storage.recording_objects import PART_SIZE
from server.supervisor import free_port
from tests.conftest import REPO, Account, PgDatabase, admin_metadata
from tests.object_store import ACCESS_KEY, ObjectStore, fetch
from tests.rpc_helpers import create, error_info, m_id, retry_delay, rpc_error, trailers
from tests.test_recordings import download, link_parts, upload, upload_messages

PREFIX = "recordings/"


@pytest.fixture
def bucket(object_store: ObjectStore) -> str:
    return object_store.new_bucket(f"rec-{secrets.token_hex(4)}")


@pytest.fixture
def s3_server(
    postgres: PgDatabase, pool: Any, db: Any, object_store: ObjectStore, bucket: str, tmp_path: Path
) -> Iterator[app.Service]:
    """A server process's gRPC service with its recordings in `bucket`."""
    settings = object_store.settings(
        bucket,
        grpc_port=0,
        data_dir=tmp_path,
        database_url=postgres.url,
        recordings_sweep_seconds=0,
        s3_public_endpoint_url=object_store.url.replace("127.0.0.1", "localhost"),
    )
    service = app.Service(settings, postgres.url, pool)
    service.start()
    yield service
    service.stop(grace=1, drain=0)


@pytest.fixture
def channel(s3_server: app.Service) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{s3_server.port}") as ch:
        yield ch


@pytest.fixture
def media_key(db: Any) -> str:
    return service_keys.issue(service_keys.MEDIA)


@pytest.fixture
def media(channel: grpc.Channel) -> Any:
    return recordings_pb2_grpc.MediaServiceStub(channel)


@pytest.fixture
def meeting_id(channel: grpc.Channel, accounts: dict[str, Account]) -> str:
    """A meeting of the host's, made on the server under test."""
    return m_id(create(meetings_pb2_grpc.MeetingServiceStub(channel), accounts["host"]))


def _listed(channel: grpc.Channel, meeting_id: str, who: Account) -> list[rpb.Recording]:
    stub = recordings_pb2_grpc.RecordingServiceStub(channel)
    request = rpb.ListRecordingsRequest(meeting_id=meeting_id)
    return list(stub.ListRecordings(request, metadata=who.metadata))


def test_an_upload_goes_up_in_parts_and_downloads_from_the_stores_own_link(
    channel: grpc.Channel,
    media: Any,
    accounts: dict[str, Account],
    media_key: str,
    object_store: ObjectStore,
    bucket: str,
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    meeting_id = m_id(create(meetings_pb2_grpc.MeetingServiceStub(channel), host,
                             attendees=[{"id": attendee.user_id}]))  # fmt: skip
    data = os.urandom(2 * PART_SIZE + 12345)  # three parts, the last a short one
    made = upload(media, media_key, meeting_id, data=data, content_type="video/webm",
                  sha256=hashlib.sha256(data).hexdigest())  # fmt: skip

    key = PREFIX + made.file_uid
    assert object_store.keys(bucket) == [key]
    head = object_store.client().head_object(Bucket=bucket, Key=key, PartNumber=1)
    assert head["PartsCount"] == 3
    assert Recording.get().sha256 == hashlib.sha256(data).hexdigest()

    [listed] = _listed(channel, meeting_id, attendee)
    link = urlsplit(listed.download_url)
    query = {name: values[0] for name, values in parse_qs(link.query).items()}
    # The store's own pre-signed GET, for the host clients reach (S3_PUBLIC_ENDPOINT_URL),
    # with the configured lifetime, as the hosted API's links are.
    assert (link.hostname, link.path) == ("localhost", f"/{bucket}/{key}")
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Credential"].startswith(f"{ACCESS_KEY}/")
    assert query["X-Amz-Expires"] == "3600"
    signed_at = datetime.strptime(query["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - signed_at).total_seconds()) < 60
    assert len(query["X-Amz-Signature"]) == 64

    status, body, headers = fetch(listed.download_url)
    assert (status, body) == (200, data)
    assert headers["Content-Type"] == "video/webm"
    assert headers["Content-Disposition"] == f'attachment; filename="{made.file_uid}.webm"'


def test_a_gateway_link_made_before_the_move_streams_from_the_store(
    channel: grpc.Channel, media: Any, media_key: str, meeting_id: str
) -> None:
    made = upload(media, media_key, meeting_id, data=b"old link" * 1000)
    secret = service_keys.secret(service_keys.DOWNLOAD_SIGNING)
    link = download_links.make_url("http://127.0.0.1:8080", secret, made.id, 60)
    rid, expires, signature = link_parts(link)
    stub = recordings_pb2_grpc.RecordingServiceStub(channel)
    assert download(stub, rid, expires, signature)[0] == b"old link" * 1000


def test_interrupted_and_refused_uploads_leave_nothing_in_the_bucket(
    channel: grpc.Channel,
    media: Any,
    media_key: str,
    object_store: ObjectStore,
    bucket: str,
    meeting_id: str,
) -> None:
    data = os.urandom(PART_SIZE + 1000)  # a part is already in the store when it fails
    sent = threading.Event()
    release = threading.Event()

    def stalled() -> Iterator[rpb.UploadRecordingRequest]:
        # The metadata and the first part's chunks, not the last chunk: the upload is cut
        # short. (Had every byte gone, grpcio may end the server's stream of a cancelled call
        # as if the client had closed it, and the recording, complete, would be kept.)
        messages = upload_messages(meeting_id, data, chunk=256 * 1024)
        for _ in range(1 + PART_SIZE // (256 * 1024)):
            yield next(messages)
        sent.set()
        release.wait(10)  # the media server goes away here

    future = media.UploadRecording.future(stalled(), metadata=(("cb-service-key", media_key),))
    assert sent.wait(10)
    time.sleep(0.5)
    future.cancel()
    release.set()

    with pytest.raises(grpc.FutureCancelledError):
        future.result(timeout=10)

    mismatch = rpc_error(lambda: upload(media, media_key, meeting_id, data=data, sha256="0" * 64))
    assert trailers(mismatch)["cb-error-body"] == (
        '{"errors":{"sha256":["does not match the bytes received"]}}'
    )
    short = rpc_error(lambda: upload(media, media_key, meeting_id, data=data, size=len(data) + 1))
    assert short.code() == grpc.StatusCode.CANCELLED
    long = rpc_error(lambda: upload(media, media_key, meeting_id, data=data, size=len(data) - 1))
    assert long.code() == grpc.StatusCode.INVALID_ARGUMENT

    deadline = time.monotonic() + 10
    while object_store.incomplete_uploads(bucket) and time.monotonic() < deadline:
        time.sleep(0.1)  # the cancelled call's abort runs on the server's thread
    assert object_store.incomplete_uploads(bucket) == []
    assert object_store.keys(bucket) == []
    assert Recording.select().count() == 0


def test_deleting_recordings_or_their_meeting_deletes_the_objects(
    channel: grpc.Channel,
    media: Any,
    accounts: dict[str, Account],
    media_key: str,
    admin_key: str,
    object_store: ObjectStore,
    bucket: str,
) -> None:
    meetings = meetings_pb2_grpc.MeetingServiceStub(channel)
    first = m_id(create(meetings, accounts["host"]))
    second = m_id(create(meetings, accounts["host"]))
    kept = upload(media, media_key, second, data=b"kept")
    for _ in range(2):
        upload(media, media_key, first, data=b"removed")
    assert len(object_store.keys(bucket)) == 3

    admin = admin_pb2_grpc.AdminServiceStub(channel)
    admin.DeleteMeetingRecordings(
        apb.DeleteMeetingRecordingsRequest(meeting_id=first), metadata=admin_metadata(admin_key)
    )
    assert object_store.keys(bucket) == [PREFIX + kept.file_uid]

    meetings.DeleteMeeting(meetings_pb2.DeleteMeetingRequest(id=second),
                           metadata=accounts["host"].metadata)  # fmt: skip
    assert object_store.keys(bucket) == []


def test_the_sweeper_removes_what_crashes_left_and_nothing_else(
    s3_server: app.Service,
    media: Any,
    channel: grpc.Channel,
    accounts: dict[str, Account],
    media_key: str,
    object_store: ObjectStore,
    bucket: str,
    meeting_id: str,
) -> None:
    made = upload(media, media_key, meeting_id, data=b"a recording")
    s3 = object_store.client()
    # A crash after the upload completed but before its row was written, one during an
    # upload, and an object of someone else's beside the prefix.
    s3.put_object(Bucket=bucket, Key=PREFIX + "orphan_1", Body=b"orphan")
    s3.create_multipart_upload(Bucket=bucket, Key=PREFIX + "partial_1")
    s3.put_object(Bucket=bucket, Key="elsewhere/file", Body=b"not ours")

    # Young objects stay. (Multipart uploads are not checked here: moto reports every one as
    # initiated on 2010-11-10, measured, so to the sweeper each is old.)
    recordings.sweep(s3_server.storage, grace_seconds=3600)
    assert len(object_store.keys(bucket)) == 3

    time.sleep(1.1)  # S3 times are whole seconds
    recordings.sweep(s3_server.storage, grace_seconds=0)
    assert object_store.keys(bucket) == ["elsewhere/file", PREFIX + made.file_uid]
    assert object_store.incomplete_uploads(bucket) == []
    status, body, _ = fetch(_listed(channel, meeting_id, accounts["host"])[0].download_url)
    assert (status, body) == (200, b"a recording")


def test_the_sweeper_on_the_file_system(db: Any, tmp_path: Path) -> None:
    storage = FilesystemStorage(tmp_path)
    for name in ("orphan_1", ".upload-x.part", "young_1"):
        (tmp_path / name).write_bytes(b"x")
    old = time.time() - 7200
    os.utime(tmp_path / "orphan_1", (old, old))
    os.utime(tmp_path / ".upload-x.part", (old, old))
    assert recordings.sweep(storage, grace_seconds=3600) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["young_1"]


def test_an_unreachable_store_is_unavailable_not_an_internal_error(
    postgres: PgDatabase,
    pool: Any,
    db: Any,
    accounts: dict[str, Account],
    media_key: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from server.settings import Settings

    closed = f"http://127.0.0.1:{free_port('127.0.0.1')}"
    settings = Settings(grpc_port=0, data_dir=tmp_path, s3_bucket="gone", s3_endpoint_url=closed,
                        s3_access_key_id="k", s3_secret_access_key="s")  # fmt: skip
    service = app.Service(settings, postgres.url, pool)
    service.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as ch:
            meeting_id = m_id(create(meetings_pb2_grpc.MeetingServiceStub(ch), accounts["host"]))
            media = recordings_pb2_grpc.MediaServiceStub(ch)
            error = rpc_error(lambda: upload(media, media_key, meeting_id, data=b"x"))
    finally:
        service.stop(grace=0, drain=0)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert error.details() == "The recording store is temporarily unavailable, try again"
    assert (error_info(error), retry_delay(error)) == (("STORAGE_UNAVAILABLE", "meetings-api"), 1)
    assert trailers(error)["cb-http-status"] == "503"
    assert "Traceback" not in caplog.text and closed not in caplog.text


def test_a_server_with_an_unreachable_store_refuses_to_start(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GRPC_PORT": "0",
        "DATA_DIR": str(tmp_path),
        "DATABASE_URL": "postgresql://127.0.0.1:1/none",
        "S3_BUCKET": "recordings",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port('127.0.0.1')}",
        "S3_ACCESS_KEY_ID": "k",
        "S3_SECRET_ACCESS_KEY": "a-secret-that-must-not-be-printed",
    }
    done = subprocess.run([sys.executable, "-m", "server"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("recording store: the object store")
    assert "a-secret-that-must-not-be-printed" not in done.stderr + done.stdout
