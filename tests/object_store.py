"""A real S3-compatible HTTP server for the tests: moto's standalone server (`python -m
moto.server`) on a loopback port, spoken to over HTTP by boto3 exactly as AWS S3 or MinIO
would be. Nothing is patched in-process: the server under test only sees a URL."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from email.message import Message
from pathlib import Path
from typing import Any

import boto3

from server.settings import Settings
from server.supervisor import free_port

# moto accepts any credentials; these are what the tests' servers and clients both use.
ACCESS_KEY = "test-access-key"
SECRET_KEY = "test-secret-key-not-real"
REGION = "us-east-1"


@dataclass
class ObjectStore:
    url: str
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def new_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str) -> list[str]:
        answer = self.client().list_objects_v2(Bucket=bucket)
        return sorted(item["Key"] for item in answer.get("Contents", []))

    def incomplete_uploads(self, bucket: str) -> list[str]:
        answer = self.client().list_multipart_uploads(Bucket=bucket)
        return [upload["Key"] for upload in answer.get("Uploads", [])]

    def env(self, bucket: str) -> dict[str, str]:
        """The S3_* settings of a server process using `bucket`."""
        return {
            "S3_BUCKET": bucket,
            "S3_ENDPOINT_URL": self.url,
            "S3_REGION": REGION,
            "S3_ACCESS_KEY_ID": ACCESS_KEY,
            "S3_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def settings(self, bucket: str, **more: Any) -> Settings:
        return replace(Settings.from_env(self.env(bucket)), **more)


def fetch(url: str) -> tuple[int, bytes, Message]:
    """GET a (pre-signed) link as a browser would: status, body and headers."""
    assert url.startswith("http://127.0.0.1:") or url.startswith("http://localhost:"), url
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 (checked above)
        return answer.status, answer.read(), answer.headers


def start_object_store(log: Path) -> Iterator[ObjectStore]:
    port = free_port("127.0.0.1")
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=out,
        )
    store = ObjectStore(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()
        try:
            store.client().list_buckets()
            break
        except Exception:
            assert time.monotonic() < deadline, "the S3 server did not start"
            time.sleep(0.1)
    try:
        yield store
    finally:
        process.terminate()
        process.wait(timeout=10)
