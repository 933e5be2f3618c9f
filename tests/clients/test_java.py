"""The Java client (clients/java/src) on grpc-java and the Java stubs of `make stubs`, against
the server directly and through the gateway.

javac compiles gen/stubs/java and the client once per test session, against Debian's jars in
/usr/share/java (installed here if missing, as root). Each test runs `java MeetingsClient`,
which plays one scenario and prints one JSON report; the test checks the report and, where the
client changed something, what the server holds (through the Python stubs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from meetings.v1 import meetings_pb2 as pb
from tests.clients.conftest import CLIENTS, STUBS
from tests.conftest import Account, install_debian_package
from tests.rpc_helpers import get, listed

JAVA_STUBS = STUBS / "java"
JAVA_CLIENT = CLIENTS / "java" / "src"
JARS = Path("/usr/share/java")
JDK = "openjdk-17-jdk-headless"
# What the client runs on: protobuf-java 3.21 (as Debian's protoc, which wrote the stubs),
# grpc-java 1.41 with its Netty transport, and what those load at run time. Debian's
# libgrpc-java does not depend on guava, netty or perfmark: each package is named here with
# one of its jars, to install it when that jar is missing.
RUNTIME_JARS = {
    "libprotobuf-java": ["protobuf.jar"],
    "libgrpc-java": [
        "grpc-api.jar", "grpc-context.jar", "grpc-core.jar", "grpc-netty.jar",
        "grpc-protobuf.jar", "grpc-protobuf-lite.jar", "grpc-stub.jar",
    ],
    "libguava-java": ["guava.jar"],
    "libperfmark-java": ["perfmark-api.jar"],
    "libnetty-java": [
        "netty-buffer.jar", "netty-codec.jar", "netty-codec-http.jar", "netty-codec-http2.jar",
        "netty-common.jar", "netty-handler.jar", "netty-resolver.jar", "netty-transport.jar",
    ],
}  # fmt: skip
# Only for javac: grpc-java's generated services carry @javax.annotation.Generated, which left
# the JDK in Java 11 (source retention: not needed at run time).
COMPILE_ONLY_JARS = {"libgeronimo-annotation-1.3-spec-java": ["geronimo-annotation-1.3-spec.jar"]}
# com.google.rpc (Status, BadRequest, ErrorInfo) comes from the stubs, generated from the
# vendored googleapis protos by the same protoc as the rest: no Debian
# libgoogle-common-protos-java on the classpath, so each class exists once.
JAVAC_TIMEOUT = 300.0  # seconds; ~10 s on an idle 2-core machine
RUN_TIMEOUT = 60.0  # seconds; the client also gives each call a 10-second deadline
GUEST = "guest@example.org"


def _jars(packages: dict[str, list[str]]) -> list[Path]:
    return [JARS / name for names in packages.values() for name in names]


def _classpath(packages: dict[str, list[str]], *more: Path) -> str:
    return os.pathsep.join(str(path) for path in [*_jars(packages), *more])


def _install_java() -> None:
    """The JDK and every jar of the classpaths, from Debian, each package only if missing."""
    install_debian_package(JDK, Path("/usr/bin/javac"))
    packages = RUNTIME_JARS | COMPILE_ONLY_JARS
    for package, names in packages.items():
        install_debian_package(package, JARS / names[0])
    missing = [str(jar) for jar in _jars(packages) if not jar.exists()]
    assert not missing, f"installed, yet missing: {missing}"


@pytest.fixture(scope="session")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stubs and the client compiled once (javac is slow): the folder of their classes."""
    _install_java()
    stubs = sorted(JAVA_STUBS.rglob("*.java"))
    if not stubs:
        pytest.fail(f"no Java stubs in {JAVA_STUBS}: `make stubs` generates them")
    classes = tmp_path_factory.mktemp("java-classes")
    sources = [*stubs, *sorted(JAVA_CLIENT.rglob("*.java"))]
    classpath = _classpath(RUNTIME_JARS | COMPILE_ONLY_JARS)
    # UTF-8 whatever the locale: proto comments, copied into the stubs, may hold any text.
    command = [_tool("javac"), "-encoding", "UTF-8", "-d", str(classes), "-cp", classpath]
    command += [str(source) for source in sources]
    started = time.monotonic()
    compiled = _run(command, JAVAC_TIMEOUT)
    if compiled.returncode != 0:
        pytest.fail(f"javac failed:\n{compiled.stdout}{compiled.stderr}", pytrace=False)
    print(f"javac: {len(stubs)} stub files and the client in {time.monotonic() - started:.1f} s")
    return classes


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not on PATH, although {JDK} is installed")
    return path


def _run(command: list[str], timeout: float, **options: Any) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, **options
        )
    except subprocess.TimeoutExpired as expired:
        # The output so far comes as bytes, text=True or not.
        output = (expired.stderr or b"").decode(errors="replace")
        pytest.fail(f"{Path(command[0]).name} gave no result in {timeout} s:\n{output[-6000:]}")


@pytest.fixture
def report(java_classes: Path, target: str, accounts: dict[str, Account]) -> dict[str, Any]:
    """The Java client's report of its scenario against `target`, as the signed-in host (the
    token in the environment, not in argv), with `attendee` invited by id."""
    command = [_tool("java"), "-cp", _classpath(RUNTIME_JARS, java_classes), "MeetingsClient"]
    command += [target, str(accounts["attendee"].user_id)]
    env = os.environ | {"MEETINGS_TOKEN": accounts["host"].token}
    ran = _run(command, RUN_TIMEOUT, env=env)
    assert ran.returncode == 0, f"the Java client failed on {target}:\n{ran.stderr[-6000:]}"
    result: dict[str, Any] = json.loads(ran.stdout)
    print(json.dumps(result, indent=2))
    return result


def test_create_reads_the_typed_fields(
    report: dict[str, Any], meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    created = report["created"]
    assert len(created["id"]) == 24 and set(created["id"]) <= set("0123456789abcdef"), created
    assert created == {
        "id": created["id"],
        "name": "Java sync",
        "host_id": host.user_id,
        "attendees": [{"id": attendee.user_id}, {"email": GUEST}],
        "notify": True,
        "has_notify_before": True,
        "notify_before_metric": "hours",
        "notify_before_value": 1,
        "has_timezone": False,
        "chat_dialog_id": "",
        "record": False,
    }
    # The server holds what the client sent: the attendees' keys, the reminder, no time zone.
    stored = get(meeting_stub, host, created["id"])
    assert [(a.HasField("id"), a.id, a.HasField("email"), a.email) for a in stored.attendees] == [
        (True, attendee.user_id, False, ""),
        (False, 0, True, GUEST),
    ]
    assert stored.notify_before == pb.NotifyBefore(metric="hours", value=1)
    assert not stored.HasField("timezone") and stored.chat_dialog_id == ""


def test_list_streams_every_meeting_and_pages(
    report: dict[str, Any], meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    ids = report["created_ids"]
    assert len(set(ids)) == 3
    # Ordered by start_date: the client started each meeting an hour after the one before.
    assert report["listed_ids"] == ids == listed(meeting_stub, accounts["host"])
    assert report["page"] == {"total_entries": 3, "limit": 2, "skip": 1, "item_ids": ids[1:]}


def test_update_changes_only_the_masked_field(
    report: dict[str, Any], meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    renamed = report["renamed"]
    expected = report["created"] | {"name": "renamed"}  # record=true was sent, but not masked
    assert renamed["updated"] == renamed["fetched"] == expected
    stored = get(meeting_stub, accounts["host"], expected["id"])
    assert (stored.name, stored.record, stored.notify) == ("renamed", False, True)
    assert stored.notify_before == pb.NotifyBefore(metric="hours", value=1)
    assert len(stored.attendees) == 2


def test_field_error_names_the_element(
    report: dict[str, Any], meeting_stub: Any, accounts: dict[str, Account]
) -> None:
    error = report["invalid_attendee"]
    assert error["code"] == "INVALID_ARGUMENT", error
    assert error["violations"] == [
        {"field": "meeting.attendees[1].email", "description": "is not a valid address"}
    ], error
    assert error["error_info"] == {"reason": "INVALID_FIELDS", "domain": "meetings-api"}, error
    assert listed(meeting_stub, accounts["host"]) == report["created_ids"]  # nothing stored


def test_a_call_without_token_is_unauthenticated(report: dict[str, Any]) -> None:
    error = report["no_token"]
    assert error["code"] == "UNAUTHENTICATED", error
    assert error["violations"] == [], error
    assert error["error_info"] == {"reason": "UNAUTHENTICATED", "domain": "meetings-api"}, error
