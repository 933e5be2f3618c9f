"""The protos as other languages' teams use them: buf lint, buf breaking against the last
release, the language options, and the gateway's descriptor naming fields by their REST keys."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from google.api import annotations_pb2
from google.protobuf import descriptor_pb2

from meetings.v1 import admin_pb2, chat_pb2, meetings_pb2, recordings_pb2, sessions_pb2, users_pb2

REPO = Path(__file__).resolve().parent.parent
BUF = REPO / "clients" / "node_modules" / ".bin" / "buf"
RELEASE = "protos/release.txtpb"
OUR_FILES = [admin_pb2, chat_pb2, meetings_pb2, recordings_pb2, sessions_pb2, users_pb2]


def buf(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_buf_lint_is_clean() -> None:
    result = buf("lint", "protos")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_the_protos_are_compatible_with_the_last_release() -> None:
    result = buf("breaking", "protos", "--against", RELEASE)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_buf_breaking_fails_on_an_incompatible_change(tmp_path: Path) -> None:
    shutil.copytree(REPO / "protos", tmp_path / "protos")
    shutil.copy(REPO / RELEASE, tmp_path / "release.txtpb")
    proto = tmp_path / "protos" / "meetings" / "v1" / "meetings.proto"
    text = proto.read_text()
    planted = text.replace("  bool notify = 13;\n", "  string notify = 13;\n", 1)
    assert planted != text
    proto.write_text(planted)
    result = buf("breaking", "protos", "--against", "release.txtpb", cwd=tmp_path)
    assert result.returncode != 0
    assert 'Field "13" with name "notify" on message "Meeting" changed type' in result.stdout


@pytest.mark.parametrize("module", OUR_FILES, ids=lambda m: m.DESCRIPTOR.name)
def test_every_file_has_each_languages_options(module: object) -> None:
    options = module.DESCRIPTOR.GetOptions()  # type: ignore[attr-defined]
    stem = Path(module.DESCRIPTOR.name).stem  # type: ignore[attr-defined]
    assert (
        options.go_package,
        options.java_package,
        options.java_multiple_files,
        options.java_outer_classname,
        options.csharp_namespace,
        options.php_namespace,
        options.ruby_package,
        options.objc_class_prefix,
        options.swift_prefix,
    ) == (
        "github.com/meetings-api/meetings-api/gen/go/meetings/v1;meetingsv1",
        "io.github.meetingsapi.meetings.v1",
        True,
        stem.capitalize() + "Proto",
        "MeetingsApi.Meetings.V1",
        "MeetingsApi\\Meetings\\V1",
        "MeetingsApi::Meetings::V1",
        "MTG",
        "MTG",
    )


def test_protos_name_fields_natively_and_the_gateway_by_their_rest_keys() -> None:
    assert meetings_pb2.Meeting.DESCRIPTOR.fields_by_number[1].name == "id"
    assert meetings_pb2.Meeting.DESCRIPTOR.fields_by_number[1].json_name == "_id"
    files = descriptor_pb2.FileDescriptorSet.FromString(
        (REPO / "gateway" / "meetings.pb").read_bytes()
    )
    ours = next(f for f in files.file if f.name == "meetings/v1/meetings.proto")
    meeting = next(m for m in ours.message_type if m.name == "Meeting")
    assert [f.name for f in meeting.field][:3] == ["_id", "name", "start_date"]
    service = next(s for s in ours.service if s.name == "MeetingService")
    get = next(m for m in service.method if m.name == "GetMeeting")
    assert get.options.Extensions[annotations_pb2.http].get == "/meetings/{_id}"
    chat = next(f for f in files.file if f.name == "meetings/v1/chat.proto")
    deleted = next(m for m in chat.message_type if m.name == "DeleteMessagesResponse")
    assert [f.name for f in deleted.field] == [
        "SuccessfullyDeleted",
        "NotFound",
        "WrongPermissions",
    ]
