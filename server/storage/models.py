"""Every Peewee model, over the tables that migrations.py creates (models only; no behaviour)."""

from __future__ import annotations

from typing import Any

import peewee as pw
from playhouse.postgres_ext import ArrayField, BinaryJSONField, DateTimeTZField

from server.storage.database import db


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


class User(BaseModel):
    id = pw.AutoField()
    object_id = pw.CharField(max_length=24, unique=True)
    login = pw.TextField()
    email = pw.TextField(default="")
    full_name = pw.TextField(default="")
    password_hash = pw.TextField(null=True)
    is_guest = pw.BooleanField(default=False)
    phone = pw.TextField(null=True)
    website = pw.TextField(null=True)
    external_user_id = pw.BigIntegerField(null=True)
    external_id = pw.TextField(null=True)
    facebook_id = pw.TextField(null=True)
    twitter_id = pw.TextField(null=True)
    custom_data = pw.TextField(null=True)
    user_tags = pw.TextField(null=True)
    avatar = pw.TextField(null=True)
    timezone = pw.TextField(null=True)
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()
    last_request_at = DateTimeTZField(null=True)

    class Meta:
        table_name = "users"


class Session(BaseModel):
    id = pw.CharField(max_length=24, primary_key=True)
    # NULL: an application session (no user signed in yet).
    user = pw.ForeignKeyField(User, column_name="user_id", on_delete="CASCADE", null=True)
    application_id = pw.IntegerField(null=True)
    token_hash = pw.CharField(max_length=64, unique=True)
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()
    expires_at = DateTimeTZField()

    class Meta:
        table_name = "sessions"


class Application(BaseModel):
    id = pw.IntegerField(primary_key=True)
    auth_key = pw.TextField()
    auth_secret = pw.TextField()
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()

    class Meta:
        table_name = "applications"


class RateLimitCounter(BaseModel):
    key = pw.TextField(primary_key=True)
    window_start = DateTimeTZField()
    hits = pw.IntegerField()

    class Meta:
        table_name = "rate_limit_counters"


class Meeting(BaseModel):
    id = pw.CharField(max_length=24, primary_key=True)
    name = pw.TextField()
    start_date = pw.BigIntegerField()
    end_date = pw.BigIntegerField()
    host = pw.ForeignKeyField(User, column_name="host_id")
    record = pw.BooleanField(default=False)
    public = pw.BooleanField(default=False)
    scheduled = pw.BooleanField(default=False)
    notify = pw.BooleanField(default=False)
    notify_before_metric = pw.TextField(null=True)
    notify_before_value = pw.IntegerField(null=True)
    timezone_offset = pw.IntegerField(null=True)
    timezone_name = pw.TextField(null=True)
    chat_dialog_id = pw.CharField(max_length=24, null=True)
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()
    version = pw.IntegerField(default=1)
    # When the media server said the call ended (None: not said).
    call_ended_at = DateTimeTZField(null=True)

    host_id: Any

    class Meta:
        table_name = "meetings"


class MeetingAttendee(BaseModel):
    id = pw.BigAutoField()
    meeting = pw.ForeignKeyField(Meeting, column_name="meeting_id", on_delete="CASCADE")
    position = pw.IntegerField()
    user_id = pw.IntegerField(null=True)
    email = pw.TextField(null=True)
    # lower(trimmed email), to match the email of a user's account.
    email_norm = pw.TextField(null=True)

    meeting_id: Any

    class Meta:
        table_name = "meeting_attendees"


class ChatDialog(BaseModel):
    id = pw.CharField(max_length=24, primary_key=True)
    meeting = pw.ForeignKeyField(Meeting, column_name="meeting_id", on_delete="CASCADE")
    meeting_id: str  # Peewee's accessor of the key, without loading the meeting
    name = pw.TextField()
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()

    class Meta:
        table_name = "chat_dialogs"


class ChatDialogOccupant(BaseModel):
    dialog = pw.ForeignKeyField(ChatDialog, column_name="dialog_id", on_delete="CASCADE")
    user_id = pw.IntegerField()
    # True: subscribed to a public meeting's dialog (not an attendee).
    joined = pw.BooleanField(default=False)

    class Meta:
        table_name = "chat_dialog_occupants"
        primary_key = pw.CompositeKey("dialog", "user_id")


class ChatMessage(BaseModel):
    id = pw.CharField(max_length=24, primary_key=True)
    dialog = pw.ForeignKeyField(ChatDialog, column_name="dialog_id", on_delete="CASCADE")
    dialog_id: str  # Peewee's accessor of the key
    sender_id = pw.IntegerField()
    message = pw.TextField()
    attachments = BinaryJSONField(default=list)
    date_sent = pw.BigIntegerField()
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()
    read_ids = ArrayField(pw.IntegerField, default=list)
    delivered_ids = ArrayField(pw.IntegerField, default=list)
    # Commit order within the dialog: left out of inserts, so that the database's default
    # assigns it (see migration 6).
    seq = pw.BigIntegerField()

    class Meta:
        table_name = "chat_messages"


class RecordingEvent(BaseModel):
    id = pw.BigAutoField()
    meeting_id = pw.CharField(max_length=24)
    action = pw.TextField()
    created_at = DateTimeTZField()

    class Meta:
        table_name = "recording_events"


class Recording(BaseModel):
    id = pw.CharField(max_length=24, primary_key=True)
    meeting = pw.ForeignKeyField(Meeting, column_name="meeting_id", on_delete="CASCADE")
    participant_ids = ArrayField(pw.IntegerField, default=list)
    duration = pw.DoubleField()
    size_bytes = pw.BigIntegerField()
    file_uid = pw.TextField(unique=True)
    sha256 = pw.TextField()
    content_type = pw.TextField()
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()
    # The webhook delivery (outbox row) that reported this recording; None: not reported yet.
    reported_by = pw.BigIntegerField(null=True)

    meeting_id: Any

    class Meta:
        table_name = "recordings"


class Outbox(BaseModel):
    id = pw.BigAutoField()
    kind = pw.TextField()
    topic = pw.TextField()
    meeting_id = pw.CharField(max_length=24, null=True)
    dedupe_key = pw.TextField(unique=True)
    payload = BinaryJSONField()
    # [{"email": str | None, "user_id": int | None, "state": ..., "detail": str | None}]
    recipients = BinaryJSONField(default=list)
    status = pw.TextField()
    attempts = pw.IntegerField(default=0)
    next_attempt_at = DateTimeTZField()
    lease_owner = pw.TextField(null=True)
    lease_expires_at = DateTimeTZField(null=True)
    version = pw.IntegerField(default=1)
    last_error = pw.TextField(null=True)
    created_at = DateTimeTZField()
    updated_at = DateTimeTZField()
    sent_at = DateTimeTZField(null=True)
    traceparent = pw.TextField(null=True)

    class Meta:
        table_name = "outbox"


class EmailTemplate(BaseModel):
    """An operator's parts of one kind of email; a NULL part is the built-in one."""

    kind = pw.TextField(primary_key=True)
    subject = pw.TextField(null=True)
    html = pw.TextField(null=True)
    text = pw.TextField(null=True)
    updated_at = DateTimeTZField()

    class Meta:
        table_name = "email_templates"


class MeetingSetting(BaseModel):
    name = pw.TextField(primary_key=True)
    value = pw.TextField()
    updated_at = DateTimeTZField()

    class Meta:
        table_name = "meeting_settings"


class ServiceKey(BaseModel):
    name = pw.TextField(primary_key=True)
    key_hash = pw.TextField()
    created_at = DateTimeTZField()

    class Meta:
        table_name = "service_keys"


class ServiceSecret(BaseModel):
    name = pw.TextField(primary_key=True)
    value = pw.TextField()
    created_at = DateTimeTZField()

    class Meta:
        table_name = "service_secrets"


class ActivityMinute(BaseModel):
    """What one replica did in one minute (telemetry.activity; storage.activity_rows)."""

    minute = DateTimeTZField()
    replica = pw.TextField()
    requests = pw.IntegerField(default=0)
    server_errors = pw.IntegerField(default=0)
    client_errors = pw.IntegerField(default=0)
    latency = ArrayField(pw.IntegerField)
    emails_sent = pw.IntegerField(default=0)
    emails_failed = pw.IntegerField(default=0)
    webhooks_sent = pw.IntegerField(default=0)
    webhooks_failed = pw.IntegerField(default=0)
    lateness = ArrayField(pw.IntegerField)
    backlog = pw.IntegerField(null=True)
    oldest_due_seconds = pw.DoubleField(null=True)

    class Meta:
        table_name = "activity_minutes"
        primary_key = pw.CompositeKey("minute", "replica")
