"""Assembles and runs the gRPC server: servicers, health, reflection, graceful shutdown."""

from __future__ import annotations

import logging
import random
import signal
import sys
import threading
import time
from concurrent import futures
from types import FrameType
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from meetings.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    chat_pb2,
    chat_pb2_grpc,
    meetings_pb2,
    meetings_pb2_grpc,
    recordings_pb2,
    recordings_pb2_grpc,
    sessions_pb2,
    sessions_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)
from server import logs, metrics_endpoint
from server.delivery import email_sender, loop, mailer, webhook_sender
from server.delivery.channel import Channel
from server.domain import chat_watch, dashboard, recordings
from server.settings import Settings, SettingsError
from server.storage import database, embedded_db, migrations
from server.storage.database import CONNECTION_ERRORS, db
from server.storage.listen import Fanout
from server.storage.recording_files import FilesystemStorage, Storage, StorageUnavailable
from server.storage.recording_objects import S3Location, S3Storage
from server.telemetry import metrics, tracing
from server.transport import (
    admin_service,
    chat_service,
    meeting_service,
    recording_service,
    reflection,
    rpc,
    session_service,
    user_service,
)
from server.transport.health import DatabaseWatch

log = logging.getLogger(__name__)

# Each process adds its activity to the dashboard's table this often (a row per minute each).
ACTIVITY_FLUSH_SECONDS = 5.0

SERVICE_NAMES = [
    meetings_pb2.DESCRIPTOR.services_by_name["MeetingService"].full_name,
    sessions_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name,
    users_pb2.DESCRIPTOR.services_by_name["UserService"].full_name,
    chat_pb2.DESCRIPTOR.services_by_name["ChatService"].full_name,
    recordings_pb2.DESCRIPTOR.services_by_name["RecordingService"].full_name,
    recordings_pb2.DESCRIPTOR.services_by_name["MediaService"].full_name,
    admin_pb2.DESCRIPTOR.services_by_name["AdminService"].full_name,
]


class Service:
    """The gRPC server of one process, bound to a database that is already migrated."""

    def __init__(
        self,
        settings: Settings,
        database_url: str,
        pool: Any,
        delivery_loop: loop.DeliveryThread | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.delivery = delivery_loop
        # A thread for each call in flight and each live chat watch (see ChatService).
        threads = settings.grpc_workers + settings.chat_watches_max
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="rpc"),
            interceptors=tracing.server_interceptors(),
            options=[("grpc.so_reuseport", 0)],
        )
        sessions_pb2_grpc.add_SessionServiceServicer_to_server(
            session_service.SessionService(settings), rpc.tolerant(self.server)
        )
        users_pb2_grpc.add_UserServiceServicer_to_server(
            user_service.UserService(settings), rpc.tolerant(self.server)
        )
        # Set once draining is over: live chat watches end, and clients resume elsewhere.
        self.watches_ending = threading.Event()
        # A LISTEN holds its session: behind PgBouncer in transaction mode, DATABASE_LISTEN_URL
        # (direct or session mode) carries it; the pool's URL serves everything else.
        listen_url = settings.database_listen_url or database_url
        self.chat_fanout = Fanout(database.connection_params(listen_url), chat_watch.CHANNEL)
        chat_pb2_grpc.add_ChatServiceServicer_to_server(
            chat_service.ChatService(
                self.chat_fanout,
                watches_max=settings.chat_watches_max,
                keepalive_seconds=settings.chat_watch_keepalive_seconds,
                stopping=self.watches_ending,
            ),
            rpc.tolerant(self.server),
        )
        storage = storage or recording_storage(settings)
        self.storage = storage
        meetings_pb2_grpc.add_MeetingServiceServicer_to_server(
            meeting_service.MeetingService(storage), rpc.tolerant(self.server)
        )
        links = download_links(settings, storage)
        self.sweeper = RecordingSweeper(
            storage, settings.recordings_sweep_seconds, settings.recordings_sweep_grace_seconds
        )
        # Set on shutdown: long-lived streams (recording control watches) end.
        self.stopping = threading.Event()
        recordings_pb2_grpc.add_RecordingServiceServicer_to_server(
            recording_service.RecordingService(links, storage), rpc.tolerant(self.server)
        )
        recordings_pb2_grpc.add_MediaServiceServicer_to_server(
            recording_service.MediaService(
                links,
                storage,
                max_bytes=settings.max_recording_bytes,
                listen_url=listen_url,
                stopping=self.stopping,
            ),
            rpc.tolerant(self.server),
        )
        admin_pb2_grpc.add_AdminServiceServicer_to_server(
            admin_service.AdminService(links, storage), rpc.tolerant(self.server)
        )
        self.health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable(
            self.server,
            [*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name],
        )
        self.watch = DatabaseWatch(
            self.health, SERVICE_NAMES, database_url, settings.health_interval_seconds, pool
        )
        self.activity = ActivityRecorder(
            settings.worker_id or loop.default_worker_id(), ACTIVITY_FLUSH_SECONDS
        )
        self.port = 0

    def start(self) -> int:
        self.port = self.server.add_insecure_port(
            f"{self.settings.grpc_host}:{self.settings.grpc_port}"
        )
        if self.port == 0:
            raise OSError(f"cannot listen on {self.settings.grpc_host}:{self.settings.grpc_port}")
        self.watch.start()
        self.activity.start()
        self.chat_fanout.start()
        self.server.start()
        if self.settings.recordings_sweep_seconds > 0:
            self.sweeper.start()
        if self.delivery is not None:
            self.delivery.start()
        log.info("gRPC server listening", extra={"port": self.port})
        return self.port

    def stop(self, grace: float | None = None, drain: float | None = None) -> None:
        """Leave the load balancer, then stop (a rolling restart fails no request):

        1. report NOT_SERVING but go on serving for `drain` seconds (SHUTDOWN_DRAIN_SECONDS),
           long enough for Envoy's health checks to take this replica out of rotation;
        2. end live chat watches (their clients resume on another replica), refuse new calls
           and let in-flight ones finish within `grace` (SHUTDOWN_GRACE_SECONDS);
        3. cancel the statements of calls still running, so that none keeps the process alive.
        """
        drain = self.settings.shutdown_drain_seconds if drain is None else drain
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        self.watch.stop()
        self.sweeper.stop()
        self.stopping.set()
        if self.delivery is not None:
            self.delivery.stop()
        if drain > 0:
            log.info("draining", extra={"seconds": drain})
            time.sleep(drain)
        self.watches_ending.set()
        self.chat_fanout.stop()  # wakes every watch, which then ends
        self.server.stop(grace).wait()
        if self.delivery is not None:
            self.delivery.join(timeout=max(grace, 1.0))
        self.activity.stop()
        cancelled = self.pool.cancel_running()
        if cancelled:
            log.warning(
                "statements still running at the grace deadline cancelled",
                extra={"count": cancelled},
            )
        log.info("gRPC server stopped")


def recording_storage(settings: Settings) -> Storage:
    """The object store when S3_BUCKET is set (several machines), else files in a folder."""
    if settings.s3_bucket is None:
        return FilesystemStorage(settings.recordings_path)
    style = settings.s3_addressing_style or ("path" if settings.s3_endpoint_url else "virtual")
    location = S3Location(
        bucket=settings.s3_bucket,
        endpoint_url=settings.s3_endpoint_url,
        public_endpoint_url=settings.s3_public_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=settings.s3_secret_access_key,
        key_prefix=settings.s3_key_prefix,
        addressing_style=style,
    )
    # A connection per RPC worker: uploads and downloads each hold one while they stream.
    return S3Storage(location, connections=settings.grpc_workers)


def download_links(settings: Settings, storage: Storage) -> recordings.DownloadLinks:
    """Links valid for DOWNLOAD_LINK_TTL_SECONDS: the store's pre-signed ones, or signed here
    on the gateway's address (PUBLIC_BASE_URL)."""
    return recordings.DownloadLinks(
        storage, settings.public_base_url, settings.download_link_ttl_seconds
    )


class ActivityRecorder(threading.Thread):
    """Stores this process's activity for the admin dashboard (dashboard.Recorder) every
    `interval` seconds, and once more when stopped."""

    def __init__(self, replica: str, interval: float) -> None:
        super().__init__(name="activity", daemon=True)
        self._recorder = dashboard.Recorder(replica)
        self._interval = interval
        self._stopped = threading.Event()

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            self._flush()
        self._flush()

    def _flush(self) -> None:
        try:
            self._recorder.flush()
        except CONNECTION_ERRORS as exc:  # kept for the next flush
            log.warning("activity not stored", extra={"error": type(exc).__name__})

    def stop(self) -> None:
        self._stopped.set()
        self.join(timeout=5)


class RecordingSweeper(threading.Thread):
    """Removes what crashes left in the recording store (recordings.sweep) every `interval`
    seconds, the first time after a random part of it: replicas started together do not
    all sweep at once (sweeping is idempotent, so an overlap only repeats work)."""

    def __init__(self, storage: Storage, interval: float, grace: float) -> None:
        super().__init__(name="recording-sweeper", daemon=True)
        self._storage = storage
        self._interval = interval
        self._grace = grace
        self._stopped = threading.Event()

    def run(self) -> None:
        wait = random.uniform(0, self._interval)  # noqa: S311 (spreading, not secrets)
        while not self._stopped.wait(wait):
            wait = self._interval
            try:
                with db.connection_context():
                    removed = recordings.sweep(self._storage, self._grace)
            except (StorageUnavailable, *CONNECTION_ERRORS) as exc:
                log.warning("recording sweep failed", extra={"error": type(exc).__name__})
                continue
            if removed:
                log.info("recording store swept", extra={"removed": removed})

    def stop(self) -> None:
        self._stopped.set()


def delivery_thread(
    settings: Settings, database_url: str, storage: Storage
) -> loop.DeliveryThread | None:
    """The delivery loop of this process, unless the settings turn it off."""
    if not settings.delivery_enabled:
        return None
    if settings.smtp_url is None:
        log.info("no SMTP_URL: emails go to the mail sink", extra={"dir": str(settings.mail_sink)})
    links = download_links(settings, storage)
    channels: list[Channel] = [
        email_sender.EmailChannel(
            mailer.from_settings(settings.smtp_url, settings.mail_sink), links
        ),
        webhook_sender.WebhookChannel(
            links=links,
            allowed_networks=settings.webhook_allowed_networks,
            timeout=settings.webhook_timeout_seconds,
            grace_seconds=settings.webhook_end_grace_seconds,
        ),
    ]
    delivery_loop = loop.DeliveryLoop(
        channels,
        worker_id=settings.worker_id or loop.default_worker_id(),
        lease_seconds=settings.delivery_lease_seconds,
        poll_seconds=settings.delivery_poll_seconds,
        listen_params=database.connection_params(settings.database_listen_url or database_url),
    )
    return loop.DeliveryThread(delivery_loop)


def main() -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level)
    storage = recording_storage(settings)
    try:
        storage.check()
    except StorageUnavailable as exc:
        print(f"recording store: {exc}", file=sys.stderr)
        return 2

    if settings.otlp_endpoint is not None:
        instance = settings.worker_id or loop.default_worker_id()
        tracing.configure(settings.otlp_endpoint, settings.trace_sample_ratio, instance)
    embedded = None
    url = settings.database_url
    if url is None:
        embedded = embedded_db.EmbeddedPostgres(settings.data_dir)
        url = embedded.url()
    pool = database.connect(url, settings.db_pool_size, prepared=settings.db_prepared_statements)
    migrations.migrate(pool)

    endpoint = None
    if settings.metrics_port is None:
        metrics.disable()
    elif settings.metrics_multiprocess_dir is None:
        # Alone on its machine (under the supervisor, the supervisor serves the processes').
        try:
            endpoint = metrics_endpoint.standalone(settings.metrics_host, settings.metrics_port)
        except OSError as exc:
            where = f"{settings.metrics_host}:{settings.metrics_port}"
            print(f"cannot serve metrics on {where} (METRICS_PORT): {exc}", file=sys.stderr)
            return 2
    service = Service(settings, url, pool, delivery_thread(settings, url, storage), storage)
    port = service.start()
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("shutting down", extra={"signal": signal.Signals(signum).name})
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    where = f"{settings.grpc_host}:{port}"
    print(f"Meetings gRPC API listening on {where}", flush=True)
    if settings.delivery_enabled and settings.smtp_url is None:
        print(f"Emails (no SMTP_URL): one file each in {settings.mail_sink / 'new'}", flush=True)
    stopping.wait()
    service.stop()
    if endpoint is not None:
        endpoint.stop()
    pool.close_all()
    if embedded is not None:
        embedded.stop()
    return 0
