"""Recording transfer: one large upload and its download, file system against object store.

A media server's upload (gRPC through Envoy, 64 KiB chunks as bench/media_server.py sends
them) and a browser's download of the link ListRecordings hands out: through Envoy and the
server for the file system, straight from the store's pre-signed URL for S3. The two stacks
run side by side on one database and are measured in alternating rounds (medians), with the
server process's resident memory sampled during each upload: it shows whether a whole file
is ever held in memory (it must not be: the object store gets 8 MiB parts).

The S3 server is the tests' moto (a dev dependency, tests/object_store.py): a Python process
on the same two cores, so its figures are a floor for what MinIO or AWS would give, and what
they show is our side's cost, not the store's.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from bench import stack
from meetings.v1 import meetings_pb2, meetings_pb2_grpc, recordings_pb2, recordings_pb2_grpc
from server.domain import service_keys
from server.storage import database
from server.storage.recording_objects import PART_SIZE
from tests.object_store import ObjectStore, start_object_store

CHUNK = 64 * 1024  # what bench/media_server.py and a media server send per message
READ = 1024 * 1024  # the downloading client's read size
MIB = 1024 * 1024
BACKENDS = ("filesystem", "object_store")
PLAIN = "plain_boto3"  # the object store's ceiling


@dataclass(frozen=True)
class Transfer:
    upload_seconds: float
    download_seconds: float
    rss_before_mib: float
    rss_peak_mib: float


@contextlib.contextmanager
def rss_peak(pid: int, every: float = 0.02) -> Iterator[list[float]]:
    """The highest resident set size (MiB) of `pid` seen while the block runs, sampled every
    20 ms; filled in as [before, peak] on exit."""
    before = stack.rss_mib(pid)
    seen = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(every):
            seen.append(stack.rss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    found: list[float] = []
    try:
        yield found
    finally:
        done.set()
        sampler.join()
        found[:] = [before, max(seen)]


def _messages(meeting_id: str, data: bytes, sha: str) -> Iterator[Any]:
    metadata = recordings_pb2.RecordingMetadata(
        meeting_id=meeting_id, content_type="video/mp4", size=len(data), sha256=sha
    )
    yield recordings_pb2.UploadRecordingRequest(metadata=metadata)
    view = memoryview(data)
    for start in range(0, len(data), CHUNK):
        yield recordings_pb2.UploadRecordingRequest(chunk=bytes(view[start : start + CHUNK]))


def _meeting(channel: grpc.Channel, token: str) -> str:
    start = 1_893_456_000 + secrets.randbelow(10**6) * 60  # 2030, out of the lists' way
    meeting = meetings_pb2.MeetingInput(name="Recorded", start_date=start, end_date=start + 1800)
    made = meetings_pb2_grpc.MeetingServiceStub(channel).CreateMeeting(
        meetings_pb2.CreateMeetingRequest(meeting=meeting), metadata=(("cb-token", token),)
    )
    return str(made.id)


def _download(url: str, sha: str) -> float:
    """Seconds to read the whole file behind `url`, checked against its SHA-256."""
    assert url.startswith("http://127.0.0.1:"), url  # the bench's own stacks and store
    digest = hashlib.sha256()
    began = time.monotonic()
    with urllib.request.urlopen(url, timeout=120) as answer:  # noqa: S310 (checked above)
        while block := answer.read(READ):
            digest.update(block)
    seconds = time.monotonic() - began
    if digest.hexdigest() != sha:
        raise RuntimeError(f"the download of {url.split('?')[0]} is not the uploaded file")
    return seconds


def transfer(s: stack.Stack, token: str, key: str, data: bytes, sha: str) -> Transfer:
    """Upload `data` as a recording through `s`, then download it by its listed link."""
    with grpc.insecure_channel(s.gateway) as channel:
        meeting_id = _meeting(channel, token)
        media = recordings_pb2_grpc.MediaServiceStub(channel)
        with rss_peak(s.server_pids[0]) as rss:
            began = time.monotonic()
            media.UploadRecording(
                _messages(meeting_id, data, sha), metadata=(("cb-service-key", key),)
            )
            uploaded = time.monotonic() - began
        listed = recordings_pb2_grpc.RecordingServiceStub(channel).ListRecordings(
            recordings_pb2.ListRecordingsRequest(meeting_id=meeting_id),
            metadata=(("cb-token", token),),
        )
        (recording,) = list(listed)
        downloaded = _download(recording.download_url, sha)
        # Nothing accumulates round after round (moto keeps objects in its own memory).
        meetings_pb2_grpc.MeetingServiceStub(channel).DeleteMeeting(
            _delete_request(meeting_id), metadata=(("cb-token", token),)
        )
    return Transfer(uploaded, downloaded, rss[0], rss[1])


def plain_store(store: ObjectStore, bucket: str, data: bytes, sha: str) -> Transfer:
    """The store's own ceiling: boto3 from this process, the same parts one after another,
    then a pre-signed GET. No server, no Envoy, no checks."""
    s3 = store.client()
    began = time.monotonic()
    upload_id = s3.create_multipart_upload(Bucket=bucket, Key="plain")["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(data), PART_SIZE), 1):
        body = data[start : start + PART_SIZE]
        answer = s3.upload_part(
            Bucket=bucket, Key="plain", UploadId=upload_id, PartNumber=number, Body=body
        )
        parts.append({"PartNumber": number, "ETag": answer["ETag"]})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="plain", UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    uploaded = time.monotonic() - began
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "plain"})
    downloaded = _download(url, sha)
    s3.delete_object(Bucket=bucket, Key="plain")
    return Transfer(uploaded, downloaded, 0.0, 0.0)


def _delete_request(meeting_id: str) -> Any:
    request = meetings_pb2.DeleteMeetingRequest()
    request.id = meeting_id
    return request


def run(db: dict[str, Any], mib: int, rounds: int, workdir: Path) -> dict[str, Any]:
    """Medians of `rounds` alternating transfers of `mib` MiB per backend, and their ratios."""
    data = os.urandom(mib * MIB)  # incompressible, as encoded video is
    sha = hashlib.sha256(data).hexdigest()
    pool = database.connect(db["url"], 2)
    with pool.connection_context():
        key = service_keys.issue(service_keys.MEDIA)
    pool.close_all()
    # The sweepers stay off: both stacks share the database, each with its own store.
    quiet = {"DELIVERY_ENABLED": "false", "RECORDINGS_SWEEP_SECONDS": "0"}
    measured: dict[str, list[Transfer]] = {name: [] for name in (*BACKENDS, PLAIN)}
    with contextlib.ExitStack() as running:
        store = running.enter_context(
            contextlib.contextmanager(start_object_store)(workdir / "s3.log")
        )
        bucket = store.new_bucket("bench-recordings")
        envs = {"filesystem": quiet, "object_store": quiet | store.env(bucket)}
        stacks = {
            backend: running.enter_context(
                stack.Stack(workdir / f"rec_{backend}", db["url"], 1, env=envs[backend])
            )
            for backend in BACKENDS
        }
        for _ in range(rounds):
            for backend, s in stacks.items():
                measured[backend].append(transfer(s, db["work"].token, key, data, sha))
            measured[PLAIN].append(plain_store(store, bucket, data, sha))
    return _summary(measured, mib, rounds)


def _summary(measured: dict[str, list[Transfer]], mib: int, rounds: int) -> dict[str, Any]:
    found: dict[str, Any] = {"mib": mib, "rounds": rounds}
    for backend, transfers in measured.items():
        up = statistics.median(t.upload_seconds for t in transfers)
        down = statistics.median(t.download_seconds for t in transfers)
        found[backend] = {
            "upload_mib_s": round(mib / up, 1),
            "download_mib_s": round(mib / down, 1),
            "upload_seconds": round(up, 2),
            "download_seconds": round(down, 2),
            "rss_before_mib": round(statistics.median(t.rss_before_mib for t in transfers), 1),
            "rss_peak_mib": round(max(t.rss_peak_mib for t in transfers), 1),
            "rss_growth_mib": round(max(t.rss_peak_mib - t.rss_before_mib for t in transfers), 1),
        }
    del found[PLAIN]["rss_before_mib"], found[PLAIN]["rss_peak_mib"], found[PLAIN]["rss_growth_mib"]
    fs, s3, plain = found["filesystem"], found["object_store"], found[PLAIN]
    for way in ("upload", "download"):
        rate = f"{way}_mib_s"
        found[f"{way}_ratio"] = round(s3[rate] / fs[rate], 3) if fs[rate] else 0.0
        found[f"{way}_of_plain"] = round(s3[rate] / plain[rate], 3) if plain[rate] else 0.0
    return found


def render(found: dict[str, Any]) -> list[str]:
    lines = [
        f"recordings, {found['mib']} MiB, median of {found['rounds']} alternating rounds:",
        f"  {'backend':<14}{'upload MiB/s':>14}{'download MiB/s':>16}{'server RSS':>12}"
        f"{'RSS growth':>12}",
    ]
    for backend in BACKENDS:
        r = found[backend]
        lines.append(
            f"  {backend:<14}{r['upload_mib_s']:>14.1f}{r['download_mib_s']:>16.1f}"
            f"{r['rss_before_mib']:>10.0f} M{r['rss_growth_mib']:>10.0f} M"
        )
    plain = found[PLAIN]
    lines.append(f"  {PLAIN:<14}{plain['upload_mib_s']:>14.1f}{plain['download_mib_s']:>16.1f}")
    lines.append(
        f"  object store / file system: upload {found['upload_ratio']:.2f}x, download "
        f"{found['download_ratio']:.2f}x; object store / plain boto3: upload "
        f"{found['upload_of_plain']:.2f}x, download {found['download_of_plain']:.2f}x"
        " (the S3 server is moto, on the same cores)"
    )
    return lines
