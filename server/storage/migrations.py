"""Versioned schema migrations, applied at start-up.

Each migration runs once, in its own transaction, under a PostgreSQL advisory lock, so running
them twice or from several processes at once is safe: the second runner waits, then finds
nothing left to do.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

# An arbitrary constant that names "the meetings schema" among advisory locks.
_LOCK_KEY = 7_242_001

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "users, sessions, meetings, attendees, chat dialogs, recording events",
        """
        CREATE TABLE users (
            id serial PRIMARY KEY,
            object_id varchar(24) NOT NULL UNIQUE,
            login text NOT NULL,
            email text NOT NULL DEFAULT '',
            full_name text NOT NULL DEFAULT '',
            password_hash text,
            is_guest boolean NOT NULL DEFAULT false,
            phone text,
            website text,
            external_user_id bigint,
            facebook_id text,
            twitter_id text,
            custom_data text,
            user_tags text,
            avatar text,
            timezone text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            last_request_at timestamptz
        );
        CREATE UNIQUE INDEX users_login_key ON users (lower(login));
        CREATE INDEX users_email_idx ON users (lower(email)) WHERE email <> '';

        CREATE TABLE sessions (
            id varchar(24) PRIMARY KEY,
            user_id integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
            token_hash varchar(64) NOT NULL UNIQUE,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX sessions_user_idx ON sessions (user_id);
        CREATE INDEX sessions_expires_idx ON sessions (expires_at);

        CREATE TABLE meetings (
            id varchar(24) PRIMARY KEY,
            name text NOT NULL,
            start_date bigint NOT NULL,
            end_date bigint NOT NULL,
            host_id integer NOT NULL REFERENCES users (id),
            record boolean NOT NULL DEFAULT false,
            public boolean NOT NULL DEFAULT false,
            scheduled boolean NOT NULL DEFAULT false,
            notify boolean NOT NULL DEFAULT false,
            notify_before_metric text,
            notify_before_value integer,
            timezone_offset integer,
            timezone_name text,
            chat_dialog_id varchar(24),
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version integer NOT NULL DEFAULT 1
        );
        -- "Meetings I host" with a date filter and the list order (start_date, id).
        CREATE INDEX meetings_host_start_idx ON meetings (host_id, start_date, id);

        CREATE TABLE meeting_attendees (
            id bigserial PRIMARY KEY,
            meeting_id varchar(24) NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            position integer NOT NULL,
            user_id integer,
            email text,
            email_norm text
        );
        CREATE INDEX meeting_attendees_meeting_idx ON meeting_attendees (meeting_id, position);
        -- "Meetings I attend", by user id or by my account's email.
        CREATE INDEX meeting_attendees_user_idx ON meeting_attendees (user_id, meeting_id)
            WHERE user_id IS NOT NULL;
        CREATE INDEX meeting_attendees_email_idx ON meeting_attendees (email_norm, meeting_id)
            WHERE email_norm IS NOT NULL;

        CREATE TABLE chat_dialogs (
            id varchar(24) PRIMARY KEY,
            meeting_id varchar(24) NOT NULL UNIQUE REFERENCES meetings (id) ON DELETE CASCADE,
            name text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        );
        CREATE TABLE chat_dialog_occupants (
            dialog_id varchar(24) NOT NULL REFERENCES chat_dialogs (id) ON DELETE CASCADE,
            user_id integer NOT NULL,
            PRIMARY KEY (dialog_id, user_id)
        );

        -- record false->true / true->false, for the media server to consume in order.
        CREATE TABLE recording_events (
            id bigserial PRIMARY KEY,
            meeting_id varchar(24) NOT NULL,
            action text NOT NULL CHECK (action IN ('start', 'stop')),
            created_at timestamptz NOT NULL
        );
        CREATE INDEX recording_events_meeting_idx ON recording_events (meeting_id, id);
        """,
    ),
    (
        2,
        "notification outbox, meeting settings",
        """
        -- One row per message to deliver, written in the transaction of the change that
        -- caused it. No foreign key to meetings: a cancellation outlives its meeting.
        CREATE TABLE outbox (
            id bigserial PRIMARY KEY,
            kind text NOT NULL CHECK (kind IN ('email', 'webhook')),
            topic text NOT NULL,
            meeting_id varchar(24),
            dedupe_key text NOT NULL UNIQUE,
            payload jsonb NOT NULL,
            recipients jsonb NOT NULL DEFAULT '[]',
            status text NOT NULL
                CHECK (status IN ('scheduled', 'sending', 'sent', 'failed', 'cancelled')),
            attempts integer NOT NULL DEFAULT 0,
            next_attempt_at timestamptz NOT NULL,
            lease_owner text,
            lease_expires_at timestamptz,
            -- Bumped by every claim and every change: a sender acts only on the version it
            -- claimed, so a reminder moved or cancelled after its claim is not sent.
            version integer NOT NULL DEFAULT 1,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz
        );
        CREATE INDEX outbox_due_idx ON outbox (next_attempt_at) WHERE status = 'scheduled';
        CREATE INDEX outbox_lease_idx ON outbox (lease_expires_at) WHERE status = 'sending';
        CREATE INDEX outbox_meeting_idx ON outbox (meeting_id, id);
        -- At most one reminder per meeting waits to go out.
        CREATE UNIQUE INDEX outbox_live_reminder_idx ON outbox (meeting_id)
            WHERE topic = 'reminder' AND status IN ('scheduled', 'sending');

        -- Operator settings that take effect without a restart (meeting URL template, sender).
        CREATE TABLE meeting_settings (
            name text PRIMARY KEY,
            value text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    (
        3,
        "recordings, call end, service keys and secrets, ordered recording events",
        """
        ALTER TABLE meetings ADD COLUMN call_ended_at timestamptz;

        CREATE TABLE recordings (
            id varchar(24) PRIMARY KEY,
            meeting_id varchar(24) NOT NULL REFERENCES meetings (id) ON DELETE CASCADE,
            participant_ids integer[] NOT NULL DEFAULT '{}',
            duration double precision NOT NULL,
            size_bytes bigint NOT NULL,
            file_uid text NOT NULL UNIQUE,
            sha256 text NOT NULL,
            content_type text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            -- The webhook delivery that reported it (NULL: not reported yet).
            reported_by bigint
        );
        CREATE INDEX recordings_meeting_idx ON recordings (meeting_id, created_at, id);
        CREATE INDEX recordings_unreported_idx ON recordings (meeting_id)
            WHERE reported_by IS NULL;

        -- Only hashes of the admin and media server keys.
        CREATE TABLE service_keys (
            name text PRIMARY KEY,
            key_hash text NOT NULL,
            created_at timestamptz NOT NULL
        );
        -- Server-side signing secrets shared by every replica (download links).
        CREATE TABLE service_secrets (
            name text PRIMARY KEY,
            value text NOT NULL,
            created_at timestamptz NOT NULL
        );

        CREATE FUNCTION notify_recording_event() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('recording_events', NEW.id::text);
            RETURN NEW;
        END $$;
        CREATE TRIGGER recording_events_notify AFTER INSERT ON recording_events
            FOR EACH ROW EXECUTE FUNCTION notify_recording_event();
        """,
    ),
    (
        4,
        "the application, application sessions, sign-in by email, rate limit counters",
        """
        -- The one application this service serves: what the SDKs send to create a session.
        CREATE TABLE applications (
            id integer PRIMARY KEY,
            auth_key text NOT NULL,
            auth_secret text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        );
        -- Its first credentials, random (gen_random_uuid draws from a strong source: 122 bits).
        INSERT INTO applications (id, auth_key, auth_secret, created_at, updated_at)
        VALUES (1, replace(gen_random_uuid()::text, '-', ''),
                replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), now(), now());
        -- A session without a user is an application session (before sign-up or sign-in).
        ALTER TABLE sessions ALTER COLUMN user_id DROP NOT NULL;
        ALTER TABLE sessions ADD COLUMN application_id integer;
        -- Sign-in by email needs one user per address (guests have none).
        ALTER TABLE users ADD COLUMN external_id text;
        DROP INDEX users_email_idx;
        CREATE UNIQUE INDEX users_email_key ON users (lower(email)) WHERE email <> '';
        -- Fixed-window counters of sign-in, sign-up and guest attempts, shared by replicas.
        CREATE TABLE rate_limit_counters (
            key text PRIMARY KEY,
            window_start timestamptz NOT NULL,
            hits integer NOT NULL
        );
        """,
    ),
    (
        5,
        "chat messages, occupants who joined a public meeting's dialog",
        """
        -- Occupants who subscribed to a public meeting's dialog, not its attendees: the
        -- meeting's changes leave them in.
        ALTER TABLE chat_dialog_occupants ADD COLUMN joined boolean NOT NULL DEFAULT false;
        CREATE INDEX chat_dialog_occupants_user_idx ON chat_dialog_occupants (user_id);

        CREATE TABLE chat_messages (
            id varchar(24) PRIMARY KEY,
            dialog_id varchar(24) NOT NULL REFERENCES chat_dialogs (id) ON DELETE CASCADE,
            sender_id integer NOT NULL,
            message text NOT NULL,
            attachments jsonb NOT NULL DEFAULT '[]',
            date_sent bigint NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            read_ids integer[] NOT NULL DEFAULT '{}',
            delivered_ids integer[] NOT NULL DEFAULT '{}'
        );
        -- History in order, and the last message of a dialog.
        CREATE INDEX chat_messages_dialog_idx ON chat_messages (dialog_id, date_sent, id);
        """,
    ),
    (
        6,
        "chat messages in commit order per dialog, and a notification for each new one",
        """
        -- The order a dialog's messages were committed in (what a watch resumes after): a
        -- message is inserted while its dialog's row is locked (chat_messages.send), so within
        -- a dialog the numbers commit in increasing order. Existing messages in history order.
        CREATE SEQUENCE chat_messages_seq;
        ALTER TABLE chat_messages ADD COLUMN seq bigint;
        UPDATE chat_messages m SET seq = o.n
            FROM (SELECT id, row_number() OVER (ORDER BY date_sent, id) AS n
                  FROM chat_messages) o
            WHERE m.id = o.id;
        SELECT setval('chat_messages_seq', coalesce(max(seq), 0) + 1, false) FROM chat_messages;
        ALTER TABLE chat_messages ALTER COLUMN seq SET DEFAULT nextval('chat_messages_seq'),
            ALTER COLUMN seq SET NOT NULL;
        ALTER SEQUENCE chat_messages_seq OWNED BY chat_messages.seq;
        CREATE UNIQUE INDEX chat_messages_watch_idx ON chat_messages (dialog_id, seq);
        -- Wakes the watches of the dialog on every replica (delivered at commit).
        CREATE FUNCTION notify_chat_message() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('chat_messages', NEW.dialog_id);
            RETURN NEW;
        END $$;
        CREATE TRIGGER chat_messages_notify AFTER INSERT ON chat_messages
            FOR EACH ROW EXECUTE FUNCTION notify_chat_message();
        """,
    ),
    (
        7,
        "the operator's email templates",
        """
        -- One row per kind of email the operator changed; a NULL part stays built-in.
        CREATE TABLE email_templates (
            kind text PRIMARY KEY,
            subject text,
            html text,
            text text,
            updated_at timestamptz NOT NULL
        );
        """,
    ),
    (
        8,
        "activity per minute, for the admin dashboard",
        """
        -- What each server process did in each minute (telemetry.activity), added to every
        -- few seconds; the dashboard sums the replicas. Latency and lateness are counts per
        -- bucket of telemetry.metrics' bounds. The outbox's backlog is sampled by each
        -- replica once a minute (the dashboard takes the largest).
        CREATE TABLE activity_minutes (
            minute timestamptz NOT NULL,
            replica text NOT NULL,
            requests integer NOT NULL DEFAULT 0,
            server_errors integer NOT NULL DEFAULT 0,
            client_errors integer NOT NULL DEFAULT 0,
            latency integer[] NOT NULL,
            emails_sent integer NOT NULL DEFAULT 0,
            emails_failed integer NOT NULL DEFAULT 0,
            webhooks_sent integer NOT NULL DEFAULT 0,
            webhooks_failed integer NOT NULL DEFAULT 0,
            lateness integer[] NOT NULL,
            backlog integer,
            oldest_due_seconds double precision,
            PRIMARY KEY (minute, replica)
        );
        """,
    ),
    (
        9,
        "the trace of the request that wrote each outbox row",
        """
        -- W3C traceparent (version-trace id-span id-flags) of the request that wrote the
        -- row, when it was traced: the delivery's span links to it. NULL: not traced.
        ALTER TABLE outbox ADD COLUMN traceparent text;
        """,
    ),
]


def migrate(database: Any) -> list[int]:
    """Apply the migrations not yet applied; returns the versions this call applied."""
    applied: list[int] = []
    with database.connection_context():
        with database.atomic():
            database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            database.execute_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        for version, name, statements in MIGRATIONS:
            with database.atomic():
                database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
                cursor = database.execute_sql(
                    "SELECT 1 FROM schema_migrations WHERE version = %s", (version,)
                )
                if cursor.fetchone() is not None:
                    continue
                database.execute_sql(statements)
                database.execute_sql(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (version, name),
                )
                applied.append(version)
                log.info("schema migration applied", extra={"version": version, "migration": name})
    return applied


def current_version(database: Any) -> int:
    with database.connection_context():
        cursor = database.execute_sql("SELECT coalesce(max(version), 0) FROM schema_migrations")
        row = cursor.fetchone()
        return int(row[0])
