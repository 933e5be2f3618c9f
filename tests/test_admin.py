"""The admin API over gRPC: the admin key, meetings for any user, recordings, settings."""

from __future__ import annotations

from typing import Any

import grpc

from meetings.v1 import admin_pb2 as pb
from server.domain import service_keys, webhook_settings
from server.storage.models import Meeting, Recording
from tests.conftest import Account, admin_metadata
from tests.rpc_helpers import create, field_violations, m_id, meeting_rules, rpc_error
from tests.test_recordings import upload


def test_admin_key_is_required_and_stored_hashed(
    admin: Any, admin_key: str, accounts: dict[str, Account], db: Any
) -> None:
    for metadata in (
        (),
        admin_metadata("admin_wrong"),
        admin_metadata(""),
        (("cb-token", accounts["host"].token),),
    ):
        error = rpc_error(
            lambda: admin.GetMeetingsSettings(pb.GetMeetingsSettingsRequest(), metadata=metadata)
        )
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert admin.GetMeetingsSettings(
        pb.GetMeetingsSettingsRequest(), metadata=admin_metadata(admin_key)
    )
    stored = db.execute_sql("SELECT key_hash FROM service_keys WHERE name = 'admin'").fetchone()[0]
    assert admin_key not in stored and len(stored) == 64


def test_admin_creates_a_meeting_for_a_user(
    admin: Any, admin_key: str, accounts: dict[str, Account], meeting_stub: Any
) -> None:
    host = accounts["host"]
    made = admin.CreateMeeting(
        pb.AdminServiceCreateMeetingRequest(
            meeting=meeting_rules(
                name="Ops call", start_date=100, end_date=200, user_id=host.user_id
            )
        ),
        metadata=admin_metadata(admin_key),
    )
    assert made.host_id == host.user_id
    assert Meeting.get_by_id(m_id(made)).host_id == host.user_id
    missing = rpc_error(
        lambda: admin.CreateMeeting(
            pb.AdminServiceCreateMeetingRequest(
                meeting=meeting_rules(name="x", start_date=1, end_date=2)
            ),
            metadata=admin_metadata(admin_key),
        )
    )
    assert field_violations(missing) == {"meeting.user_id": ["is required: the user who hosts it"]}
    unknown = rpc_error(
        lambda: admin.CreateMeeting(
            pb.AdminServiceCreateMeetingRequest(
                meeting=meeting_rules(name="x", start_date=1, end_date=2, user_id=99999)
            ),
            metadata=admin_metadata(admin_key),
        )
    )
    assert field_violations(unknown) == {"meeting.user_id": ["no user has this id"]}
    # Users cannot pick another host through their own route.
    error = rpc_error(lambda: create(meeting_stub, host, user_id=accounts["stranger"].user_id))
    assert field_violations(error) == {"meeting.user_id": ["can only be set through the admin API"]}


def test_admin_lists_and_deletes_any_meetings_recordings(
    admin: Any,
    admin_key: str,
    accounts: dict[str, Account],
    meeting_stub: Any,
    channel: Any,
) -> None:
    from meetings.v1 import recordings_pb2_grpc

    media = recordings_pb2_grpc.MediaServiceStub(channel)
    media_key = service_keys.issue(service_keys.MEDIA)
    meeting_id = m_id(create(meeting_stub, accounts["host"]))
    made = [upload(media, media_key, meeting_id, data=bytes([i]) * 10) for i in range(2)]
    listed = list(
        admin.ListMeetingRecordings(
            pb.ListMeetingRecordingsRequest(meeting_id=meeting_id),
            metadata=admin_metadata(admin_key),
        )
    )
    assert [r.id for r in listed] == [r.id for r in made]
    admin.DeleteMeetingRecordings(
        pb.DeleteMeetingRecordingsRequest(meeting_id=meeting_id), metadata=admin_metadata(admin_key)
    )
    assert Recording.select().count() == 0
    error = rpc_error(
        lambda: admin.ListMeetingRecordings(
            pb.ListMeetingRecordingsRequest(meeting_id="f" * 24),
            metadata=admin_metadata(admin_key),
        )
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_settings_read_update_and_all_or_nothing(admin: Any, admin_key: str, db: Any) -> None:
    got = admin.UpdateMeetingsSettings(
        pb.UpdateMeetingsSettingsRequest(
            meeting_url_template="https://meet.example.org/room/%s",
            webhook_url="https://hooks.example.org/recordings",
            webhook_enabled=True,
        ),
        metadata=admin_metadata(admin_key),
    )
    assert (
        got.meeting_url_template,
        got.webhook_url,
        got.webhook_enabled,
        got.webhook_secrets,
    ) == ("https://meet.example.org/room/%s", "https://hooks.example.org/recordings", True, 1)
    error = rpc_error(
        lambda: admin.UpdateMeetingsSettings(
            pb.UpdateMeetingsSettingsRequest(
                meeting_url_template="https://x.example/%s",
                sender="not an address",
                webhook_url="ftp://files.example.org",
            ),
            metadata=admin_metadata(admin_key),
        )
    )
    assert set(field_violations(error)) == {"sender", "webhook_url"}
    after = admin.GetMeetingsSettings(
        pb.GetMeetingsSettingsRequest(), metadata=admin_metadata(admin_key)
    )
    assert after == got  # nothing changed, not even the valid template


def test_rotation_keeps_the_previous_secret_for_a_while(
    admin: Any, admin_key: str, db: Any
) -> None:
    first = admin.RotateWebhookSecret(
        pb.RotateWebhookSecretRequest(), metadata=admin_metadata(admin_key)
    )
    second = admin.RotateWebhookSecret(
        pb.RotateWebhookSecretRequest(), metadata=admin_metadata(admin_key)
    )
    assert first.secret.startswith("whsec_") and second.secret != first.secret
    from server.domain import clock

    assert webhook_settings.load().active_secrets(clock.now()) == [second.secret, first.secret]
    third = admin.RotateWebhookSecret(
        pb.RotateWebhookSecretRequest(previous_valid_seconds=0), metadata=admin_metadata(admin_key)
    )
    assert webhook_settings.load().active_secrets(clock.now()) == [third.secret]
    shown = admin.GetMeetingsSettings(
        pb.GetMeetingsSettingsRequest(), metadata=admin_metadata(admin_key)
    )
    assert shown.webhook_secrets == 1 and third.secret not in str(shown)
