"""Stateless replicas: two server processes with data directories of their own, one database
and one object store, behind one Envoy. A recording uploaded through one is listed,
downloaded and deleted through the other, and the service goes on when one is killed."""

from __future__ import annotations

import os
import secrets
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from meetings.v1 import admin_pb2 as apb
from meetings.v1 import admin_pb2_grpc, recordings_pb2_grpc
from meetings.v1 import recordings_pb2 as rpb
from server.domain import service_keys
from tests.conftest import Account, PgDatabase, admin_metadata
from tests.gateway.conftest import Gateway, create_meeting
from tests.object_store import ObjectStore, fetch
from tests.replicas import Replica, behind_envoy
from tests.test_recordings import upload


@pytest.fixture
def bucket(object_store: ObjectStore) -> str:
    return object_store.new_bucket(f"replicas-{secrets.token_hex(4)}")


@pytest.fixture
def replicas(
    postgres: PgDatabase, tmp_path: Path, pool: Any, object_store: ObjectStore, bucket: str
) -> Iterator[tuple[list[Replica], Gateway]]:
    with behind_envoy(
        postgres,
        tmp_path,
        [{**object_store.env(bucket), "DATA_DIR": str(tmp_path / f"data{n}")} for n in range(2)],
    ) as running:
        yield running


def test_what_one_replica_stores_the_other_serves(
    replicas: tuple[list[Replica], Gateway],
    accounts: dict[str, Account],
    object_store: ObjectStore,
    bucket: str,
    tmp_path: Path,
) -> None:
    (first, second), gateway = replicas
    host = accounts["host"]
    media_key = service_keys.issue(service_keys.MEDIA)
    admin_key = service_keys.issue(service_keys.ADMIN)
    meeting = create_meeting(gateway, host.token)
    data = os.urandom(300_000)
    with grpc.insecure_channel(f"127.0.0.1:{first.port}") as ch:
        made = upload(recordings_pb2_grpc.MediaServiceStub(ch), media_key, meeting["_id"], data)
    # Nothing of it on either replica's disk: the object store holds it.
    assert not list((tmp_path / "data0").rglob(made.file_uid))
    assert object_store.keys(bucket) == [f"recordings/{made.file_uid}"]

    with grpc.insecure_channel(f"127.0.0.1:{second.port}") as ch:
        stub = recordings_pb2_grpc.RecordingServiceStub(ch)
        request = rpb.ListRecordingsRequest(meeting_id=meeting["_id"])
        [listed] = list(stub.ListRecordings(request, metadata=host.metadata))
    assert fetch(listed.download_url)[1] == data

    # Through the gateway, whichever replica answers; then with the first one killed.
    path = f"/meetings/recordings/{meeting['_id']}"
    statuses: Counter[int] = Counter()
    for _ in range(10):
        reply = gateway.call("GET", path, token=host.token)
        statuses[reply.status] += 1
        assert reply.json()[0]["file_uid"] == made.file_uid
    first.stop(signal.SIGKILL)
    for _ in range(20):
        statuses[gateway.call("GET", path, token=host.token).status] += 1
    assert statuses == Counter({200: 30})

    with grpc.insecure_channel(f"127.0.0.1:{second.port}") as ch:
        admin_pb2_grpc.AdminServiceStub(ch).DeleteMeetingRecordings(
            apb.DeleteMeetingRecordingsRequest(meeting_id=meeting["_id"]),
            metadata=admin_metadata(admin_key),
        )
    assert object_store.keys(bucket) == []
    assert gateway.call("GET", path, token=host.token).json() == []
