"""Recordings over gRPC: media uploads, the participants' list, signed downloads, control events."""

from __future__ import annotations

import hashlib
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import pytest

from meetings.v1 import recordings_pb2 as rpb
from meetings.v1 import recordings_pb2_grpc
from server import app
from server.domain import service_keys
from server.storage.models import Meeting, Recording
from server.supervisor import free_port
from tests.conftest import REPO, Account, PgDatabase
from tests.rpc_helpers import create, m_id, rpc_error, trailers, update

PAYLOAD = os.urandom(700_000)


@pytest.fixture
def media_key(db: Any) -> str:
    return service_keys.issue(service_keys.MEDIA)


@pytest.fixture
def media(channel: grpc.Channel) -> recordings_pb2_grpc.MediaServiceStub:
    return recordings_pb2_grpc.MediaServiceStub(channel)


@pytest.fixture
def recordings_stub(channel: grpc.Channel) -> recordings_pb2_grpc.RecordingServiceStub:
    return recordings_pb2_grpc.RecordingServiceStub(channel)


def upload_messages(
    meeting_id: str, data: bytes, chunk: int = 64 * 1024, **metadata: Any
) -> Iterator[rpb.UploadRecordingRequest]:
    metadata.setdefault("size", len(data))
    yield rpb.UploadRecordingRequest(
        metadata=rpb.RecordingMetadata(meeting_id=meeting_id, **metadata)
    )
    for start in range(0, len(data), chunk):
        yield rpb.UploadRecordingRequest(chunk=data[start : start + chunk])


def upload(media: Any, key: str, meeting_id: str, data: bytes = PAYLOAD, **metadata: Any) -> Any:
    return media.UploadRecording(
        upload_messages(meeting_id, data, **metadata), metadata=(("cb-service-key", key),)
    )


def link_parts(url: str) -> tuple[str, int, str]:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    return parts.path.split("/")[2], int(query["expires"][0]), query["signature"][0]


def download(
    stub: Any, recording_id: str, expires: int, signature: str
) -> tuple[bytes, dict[str, str]]:
    call = stub.DownloadRecording(
        rpb.DownloadRecordingRequest(id=recording_id, expires=expires, signature=signature)
    )
    chunks = list(call)
    assert chunks[0].content_type
    return b"".join(c.data for c in chunks), dict(call.initial_metadata())


def test_upload_list_and_download(
    media: Any,
    recordings_stub: Any,
    meeting_stub: Any,
    accounts: dict[str, Account],
    media_key: str,
    grpc_server: app.Service,
) -> None:
    host, attendee, stranger = accounts["host"], accounts["attendee"], accounts["stranger"]
    meeting = create(meeting_stub, host, attendees=[{"id": attendee.user_id}], public=True)
    made = upload(
        media,
        media_key,
        m_id(meeting),
        participants_ids=[host.user_id, 7],
        duration=6.062,
        content_type="video/webm",
        sha256=hashlib.sha256(PAYLOAD).hexdigest(),
    )
    assert made.room_id == m_id(meeting)
    assert made.size == round(len(PAYLOAD) / 1048576, 2) and made.duration == 6.062
    assert (list(made.participants_ids), made.participants_count) == ([host.user_id, 7], 2)
    uuid_part, _, room = made.file_uid.partition("_")
    assert room == m_id(meeting) and len(uuid_part) == 36

    for who in (host, attendee):
        listed = list(
            recordings_stub.ListRecordings(
                rpb.ListRecordingsRequest(meeting_id=m_id(meeting)), metadata=who.metadata
            )
        )
        assert [r.id for r in listed] == [made.id]
    # Public meetings are visible to anyone, their recordings only to participants.
    error = rpc_error(
        lambda: recordings_stub.ListRecordings(
            rpb.ListRecordingsRequest(meeting_id=m_id(meeting)), metadata=stranger.metadata
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND

    url = listed[0].download_url
    assert url.startswith("http://127.0.0.1:8080/recordings/")
    rid, expires, signature = link_parts(url)
    assert 3590 <= expires - time.time() <= 3600
    data, headers = download(recordings_stub, rid, expires, signature)
    assert data == PAYLOAD
    assert headers["cb-content-length"] == str(len(PAYLOAD))
    assert made.file_uid in headers["content-disposition"]
    stored = Path(grpc_server.settings.recordings_path) / made.file_uid
    assert stored.read_bytes() == PAYLOAD


def test_expired_tampered_and_foreign_links_serve_nothing(
    media: Any,
    recordings_stub: Any,
    meeting_stub: Any,
    accounts: dict[str, Account],
    media_key: str,
) -> None:
    host = accounts["host"]
    first = upload(media, media_key, m_id(create(meeting_stub, host)), data=b"first")
    second = upload(media, media_key, m_id(create(meeting_stub, host)), data=b"second")
    rid, expires, signature = link_parts(first.download_url)
    other_id, other_expires, other_signature = link_parts(second.download_url)
    bad = [
        (rid, expires, "0" * 64),  # tampered signature
        (rid, expires + 3600, signature),  # tampered expiry
        (other_id, expires, signature),  # another recording's link
        (rid, int(time.time()) - 10, signature),  # expired (and so not signed)
    ]
    for recording_id, exp, sig in bad:
        error = rpc_error(lambda: download(recordings_stub, recording_id, exp, sig))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert trailers(error)["cb-http-status"] == "403"
    assert download(recordings_stub, other_id, other_expires, other_signature)[0] == b"second"


def test_expired_link_from_a_short_ttl(
    postgres: PgDatabase,
    pool: Any,
    db: Any,
    accounts: dict[str, Account],
    tmp_path: Path,
    meeting_stub: Any,
    media_key: str,
) -> None:
    from server.settings import Settings

    settings = Settings(grpc_port=0, download_link_ttl_seconds=1, data_dir=tmp_path)
    service = app.Service(settings, postgres.url, pool)
    service.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{service.port}") as ch:
            made = upload(
                recordings_pb2_grpc.MediaServiceStub(ch),
                media_key,
                m_id(create(meeting_stub, accounts["host"])),
                data=b"short-lived",
            )
            stub = recordings_pb2_grpc.RecordingServiceStub(ch)
            rid, expires, signature = link_parts(made.download_url)
            assert download(stub, rid, expires, signature)[0] == b"short-lived"
            time.sleep(max(0.0, expires - time.time()) + 1.1)
            error = rpc_error(lambda: download(stub, rid, expires, signature))
            assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    finally:
        service.stop(grace=0, drain=0)


def test_interrupted_and_bad_uploads_leave_nothing(
    media: Any,
    meeting_stub: Any,
    accounts: dict[str, Account],
    media_key: str,
    grpc_server: app.Service,
) -> None:
    meeting_id = m_id(create(meeting_stub, accounts["host"]))
    folder = Path(grpc_server.settings.recordings_path)
    before = set(folder.iterdir())

    sent = threading.Event()
    release = threading.Event()

    def stalled() -> Iterator[rpb.UploadRecordingRequest]:
        messages = upload_messages(meeting_id, PAYLOAD)
        for _ in range(4):
            yield next(messages)
        sent.set()
        release.wait(10)  # the client goes away here

    future = media.UploadRecording.future(stalled(), metadata=(("cb-service-key", media_key),))
    assert sent.wait(10)
    time.sleep(0.5)
    future.cancel()
    release.set()
    time.sleep(0.5)

    mismatch = rpc_error(lambda: upload(media, media_key, meeting_id, sha256="0" * 64))
    assert mismatch.code() == grpc.StatusCode.INVALID_ARGUMENT
    empty = rpc_error(lambda: upload(media, media_key, meeting_id, data=b""))
    assert trailers(empty)["cb-error-body"] == (
        '{"errors":{"size":["is required: the file\'s length in bytes"]}}'
    )
    # A stream that ends cleanly but short is an interrupted upload, whatever the transport saw.
    short = rpc_error(lambda: upload(media, media_key, meeting_id, data=b"abc", size=10))
    assert short.code() == grpc.StatusCode.CANCELLED
    long = rpc_error(lambda: upload(media, media_key, meeting_id, data=b"abcdef", size=3))
    assert trailers(long)["cb-error-body"] == (
        '{"errors":{"size":["more bytes arrived than announced"]}}'
    )
    unknown = rpc_error(lambda: upload(media, media_key, "f" * 24))
    assert unknown.code() == grpc.StatusCode.NOT_FOUND
    no_metadata = rpc_error(
        lambda: media.UploadRecording(
            iter([rpb.UploadRecordingRequest(chunk=b"x")]),
            metadata=(("cb-service-key", media_key),),
        )
    )
    assert no_metadata.code() == grpc.StatusCode.INVALID_ARGUMENT

    assert Recording.select().count() == 0
    assert set(folder.iterdir()) == before  # no partial or temp file left


def test_media_calls_need_the_media_key(
    media: Any, meeting_stub: Any, accounts: dict[str, Account], media_key: str
) -> None:
    meeting_id = m_id(create(meeting_stub, accounts["host"]))
    for metadata in (
        (),
        (("cb-service-key", "media_forged"),),
        (("cb-token", accounts["host"].token),),
    ):
        error = rpc_error(
            lambda: media.EndCall(rpb.EndCallRequest(meeting_id=meeting_id), metadata=metadata)
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    # Issuing a new key retires the old one.
    new_key = service_keys.issue(service_keys.MEDIA)
    old = rpc_error(
        lambda: media.EndCall(
            rpb.EndCallRequest(meeting_id=meeting_id), metadata=(("cb-service-key", media_key),)
        )
    )
    assert old.code() == grpc.StatusCode.UNAUTHENTICATED
    media.EndCall(
        rpb.EndCallRequest(meeting_id=meeting_id), metadata=(("cb-service-key", new_key),)
    )
    assert Meeting.get_by_id(meeting_id).call_ended_at is not None


def watch(stub: Any, key: str, into: queue.Queue[Any], after_id: int | None = None) -> Any:
    request = rpb.WatchRecordingControlRequest()
    if after_id is not None:
        request.after_id = after_id
    call = stub.WatchRecordingControl(request, metadata=(("cb-service-key", key),))

    def pump() -> None:
        try:
            for event in call:
                into.put(event)
        except grpc.RpcError:
            pass

    threading.Thread(target=pump, daemon=True).start()
    return call


def test_record_toggles_reach_a_watcher_on_another_process(
    postgres: PgDatabase,
    meeting_stub: Any,
    accounts: dict[str, Account],
    media_key: str,
    tmp_path: Path,
) -> None:
    host = accounts["host"]
    meeting = create(meeting_stub, host)
    port = free_port("127.0.0.1")
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url,
        "GRPC_PORT": str(port),
        "DELIVERY_ENABLED": "false",
        "DATA_DIR": str(tmp_path),
    }
    other = subprocess.Popen(
        [sys.executable, "-m", "server"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        stub = recordings_pb2_grpc.MediaServiceStub(channel)
        events: queue.Queue[Any] = queue.Queue()
        call = watch(stub, media_key, events)
        time.sleep(0.5)
        # The host toggles recording through this process; the watcher is on the other one.
        update(meeting_stub, host, m_id(meeting), record=True)
        first = events.get(timeout=5)
        assert (first.meeting_id, first.action) == (m_id(meeting), "start")
        call.cancel()
        # While nobody watches: stop, then start again. A reconnect from the last id sees both.
        update(meeting_stub, host, m_id(meeting), record=False)
        update(meeting_stub, host, m_id(meeting), record=True)
        resumed: queue.Queue[Any] = queue.Queue()
        call = watch(stub, media_key, resumed, after_id=first.id)
        got = [resumed.get(timeout=5) for _ in range(2)]
        assert [(e.action, e.id > first.id) for e in got] == [("stop", True), ("start", True)]
        assert got[0].id < got[1].id
        call.cancel()
        error = rpc_error(
            lambda: list(
                stub.WatchRecordingControl(
                    rpb.WatchRecordingControlRequest(), metadata=(("cb-service-key", "nope"),)
                )
            )
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        channel.close()
    finally:
        other.terminate()
        other.wait(timeout=20)


def test_the_simulated_media_server_script(
    meeting_stub: Any,
    accounts: dict[str, Account],
    media_key: str,
    grpc_server: app.Service,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import media_server

    meeting_id = m_id(create(meeting_stub, accounts["host"]))
    code = media_server.main(
        [
            meeting_id,
            "--key",
            media_key,
            "--seconds",
            "1.5",
            "--participants",
            "3,4",
            "--address",
            f"127.0.0.1:{grpc_server.port}",
        ]
    )
    assert code == 0
    assert f"ended the call of meeting {meeting_id}" in capsys.readouterr().out
    [made] = Recording.select().where(Recording.meeting == meeting_id)
    assert (made.content_type, made.participant_ids, made.duration) == ("audio/x-wav", [3, 4], 1.5)
    assert made.size_bytes == 44 + 2 * 8000 * 1.5  # a WAV header and 1.5 s of 16-bit samples
    assert Meeting.get_by_id(meeting_id).call_ended_at is not None
    wrong = media_server.main(
        [meeting_id, "--key", "nope", "--address", f"127.0.0.1:{grpc_server.port}"]
    )
    assert wrong == 1 and "UNAUTHENTICATED" in capsys.readouterr().err
