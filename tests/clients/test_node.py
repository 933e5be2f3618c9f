"""The Node client (clients/node/client.ts: @grpc/grpc-js with the TypeScript stubs of `make
stubs`), type-checked and compiled by tsc, against the server directly and through the gateway.

The program runs its scenario and prints one JSON report. The test judges the report, and
checks with the Python stubs, on the server's side, what the program changed.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.rpc import code_pb2

from meetings.v1 import meetings_pb2_grpc
from tests.clients.conftest import CLIENTS, STUBS
from tests.conftest import Account
from tests.rpc_helpers import get, listed, m_id

NODE_CLIENT = CLIENTS / "node"
TSC = CLIENTS / "node_modules" / ".bin" / "tsc"
BUILD = NODE_CLIENT / "build"  # tsconfig.json's outDir, mirroring the repository
PROGRAM = BUILD / "clients" / "node" / "client.js"
TSC_TIMEOUT = 120.0
RUN_TIMEOUT = 60.0  # every call of the program has a deadline of 10 s
ERROR_DOMAIN = "meetings-api"


@functools.cache
def compiled() -> Path:
    """The program, compiled by tsc once a run; a type error fails the test with tsc's output."""
    for needed in (TSC, STUBS / "ts" / "meetings" / "v1" / "meetings.ts"):
        if not needed.exists():
            pytest.fail(f"{needed} is missing: `make stubs` makes it")
    shutil.rmtree(BUILD, ignore_errors=True)  # nothing left over from stubs since removed
    result = subprocess.run(
        [str(TSC), "--project", str(NODE_CLIENT), "--pretty", "false"],
        capture_output=True, text=True, timeout=TSC_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"tsc failed:\n{result.stdout}{result.stderr}"
    return PROGRAM


def run_client(target: str, host: Account, attendee: Account) -> dict[str, Any]:
    """The program's report of its scenario, run as `host` against `target`."""
    result = subprocess.run(
        ["node", str(compiled()), target, str(attendee.user_id)],
        env=os.environ | {"MEETINGS_TOKEN": host.token},
        capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, f"the client failed:\n{result.stderr}"
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_node_client(
    target: str,
    accounts: dict[str, Account],
    meeting_stub: meetings_pb2_grpc.MeetingServiceStub,
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    report = run_client(target, host, attendee)
    print(json.dumps(report, indent=2))  # pytest -s shows it
    check_created(report["created"], host, attendee, meeting_stub)
    check_lists(report, host, meeting_stub)
    check_update(report, host, meeting_stub)
    check_errors(report)


def check_created(
    created: dict[str, Any],
    host: Account,
    attendee: Account,
    stub: meetings_pb2_grpc.MeetingServiceStub,
) -> None:
    assert re.fullmatch("[0-9a-f]{24}", created["id"]), created
    assert created["notifyBeforeMetric"] == "hours"
    assert created["timezoneIsUndefined"] is True
    assert created["chatDialogId"] == ""
    meeting = created["json"]
    assert meeting["hostId"] == host.user_id
    assert meeting["attendees"] == [{"id": attendee.user_id}, {"email": "guest@example.org"}]
    # Stored with the attendee's id: the attendee sees it too.
    assert m_id(get(stub, attendee, created["id"])) == created["id"]


def check_lists(
    report: dict[str, Any], host: Account, stub: meetings_pb2_grpc.MeetingServiceStub
) -> None:
    """The stream and the page list what the server holds: the three meetings the program
    created (the refused one is not among them), in the server's order."""
    ids = listed(stub, host)
    assert len(ids) == 3 and ids[0] == report["created"]["id"], ids
    assert report["listed"] == ids
    assert report["page"] == {"totalEntries": 3, "limit": 2, "skip": 1, "ids": ids[1:]}


def check_update(
    report: dict[str, Any], host: Account, stub: meetings_pb2_grpc.MeetingServiceStub
) -> None:
    """The update set name and record with a mask of name only: the name changed, nothing else
    did. Both sides print proto3 JSON (ts-proto's toJSON, Python's json_format): they agree."""
    before = report["created"]["json"]
    after = json_format.MessageToDict(get(stub, host, before["_id"]))
    assert report["updated"] == report["fetched"] == after
    assert after == before | {"name": "renamed", "updatedAt": after["updatedAt"]}
    assert "record" not in after  # false, as before


def check_errors(report: dict[str, Any]) -> None:
    """Status codes, then the google.rpc details the program decoded from the trailer."""
    invalid = report["fieldError"]
    unauthenticated = report["unauthenticated"]
    assert invalid["code"] == code_pb2.INVALID_ARGUMENT, invalid
    for error in unauthenticated.values():
        assert error["code"] == code_pb2.UNAUTHENTICATED, error
    assert invalid["status"] == {"code": invalid["code"], "message": invalid["message"]}
    violations = invalid["fieldViolations"]
    assert violations == [
        {"field": "meeting.attendees[1].email", "description": "is not a valid address"}
    ], invalid
    assert invalid["errorInfo"] == {"reason": "INVALID_FIELDS", "domain": ERROR_DOMAIN}, invalid
    for error in unauthenticated.values():
        assert error["status"] == {"code": error["code"], "message": error["message"]}, error
        assert error["errorInfo"] == {"reason": "UNAUTHENTICATED", "domain": ERROR_DOMAIN}, error
