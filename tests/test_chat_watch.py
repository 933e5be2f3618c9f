"""ChatService.WatchDialog: a meeting dialog's new messages, live, across replicas.

The watch runs on a replica of its own (a `python -m server` process, with short keepalives
and room for two watches); messages are sent through the tests' in-process server, another
process on the same database, so every message reaches the watch through LISTEN/NOTIFY.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from meetings.v1 import chat_pb2, chat_pb2_grpc, meetings_pb2_grpc, sessions_pb2, sessions_pb2_grpc
from server import app, supervisor
from tests import rpc_helpers
from tests.conftest import Account, PgDatabase
from tests.replicas import Replica

KEEPALIVE_SECONDS = 0.3
WAIT = 10.0  # seconds: the longest any step may take


@pytest.fixture(scope="module")
def watch_replica(
    postgres: PgDatabase, pool: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[chat_pb2_grpc.ChatServiceStub]:
    folder = tmp_path_factory.mktemp("watch-replica")
    replica = Replica(
        supervisor.free_port("127.0.0.1"),
        folder / "replica.log",
        {
            "CHAT_WATCH_KEEPALIVE_SECONDS": str(KEEPALIVE_SECONDS),
            "CHAT_WATCHES_MAX": "2",
            "SHUTDOWN_DRAIN_SECONDS": "0",
            "DATA_DIR": str(folder / "data"),
        },
    )
    replica.start(postgres)
    with grpc.insecure_channel(f"127.0.0.1:{replica.port}") as channel:
        yield chat_pb2_grpc.ChatServiceStub(channel)
    replica.stop(signal.SIGTERM)
    assert "Traceback" not in replica.log.read_text()


class Watcher:
    """A WatchDialog call read on a thread of its own, its events queued."""

    def __init__(self, stub: chat_pb2_grpc.ChatServiceStub, account: Account, **request: Any):
        self.call: Any = stub.WatchDialog(  # a grpc.Call too (cancel), untyped in the stubs
            chat_pb2.WatchDialogRequest(**request), metadata=account.metadata, timeout=3 * WAIT
        )
        self.events: queue.Queue[chat_pb2.DialogEvent | grpc.RpcError | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for event in self.call:
                self.events.put(event)
            self.events.put(None)
        except grpc.RpcError as error:
            self.events.put(error)

    def next(self, wait: float = WAIT) -> chat_pb2.DialogEvent | grpc.RpcError | None:
        return self.events.get(timeout=wait)

    def next_message(self) -> chat_pb2.Message:
        """The next message (keepalives skipped)."""
        while True:
            event = self.next()
            assert isinstance(event, chat_pb2.DialogEvent), event
            if event.WhichOneof("event") == "message":
                return event.message

    def messages(self, count: int) -> list[str]:
        """The texts of the next `count` messages."""
        return [self.next_message().message for _ in range(count)]

    def end(self) -> grpc.RpcError | None:
        """How the stream ended (keepalives skipped); fails on a message."""
        while True:
            event = self.next()
            if not isinstance(event, chat_pb2.DialogEvent):
                return event
            assert event.WhichOneof("event") == "keepalive", event

    def cancel(self) -> None:
        self.call.cancel()


@pytest.fixture
def dialog(meeting_stub: meetings_pb2_grpc.MeetingServiceStub, accounts: dict[str, Account]) -> str:
    meeting = rpc_helpers.create(
        meeting_stub, accounts["host"], chat=True, attendees=[{"id": accounts["attendee"].user_id}]
    )
    dialog_id: str = meeting.chat_dialog_id
    return dialog_id


def _send(channel: grpc.Channel, account: Account, dialog: str, text: str) -> chat_pb2.Message:
    stub = chat_pb2_grpc.ChatServiceStub(channel)
    request = chat_pb2.CreateMessageRequest(chat_dialog_id=dialog, message=text)
    sent: chat_pb2.Message = stub.CreateMessage(request, metadata=account.metadata)
    return sent


def test_messages_sent_on_another_replica_arrive_in_order_with_keepalives_between(
    watch_replica: chat_pb2_grpc.ChatServiceStub,
    channel: grpc.Channel,
    accounts: dict[str, Account],
    dialog: str,
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    _send(channel, attendee, dialog, "before the watch")
    watcher = Watcher(watch_replica, host, chat_dialog_id=dialog)
    try:
        first = watcher.next()  # nothing new yet: a keepalive
        assert isinstance(first, chat_pb2.DialogEvent)
        assert first.WhichOneof("event") == "keepalive"
        sent = [_send(channel, attendee, dialog, f"message {n}") for n in range(3)]
        _send(channel, host, dialog, "the host's own")
        assert watcher.messages(4) == ["message 0", "message 1", "message 2", "the host's own"]
        # As the sender got it back: id, sender, the dialog.
        one_more = _send(channel, attendee, dialog, "one more")
        got = watcher.next_message()
        assert (got.id, got.chat_dialog_id, got.sender_id, got.message) == (
            one_more.id, dialog, attendee.user_id, "one more"
        )  # fmt: skip
        assert got.id not in {m.id for m in sent}
    finally:
        watcher.cancel()


def test_a_watch_resumes_after_the_last_message_it_received(
    watch_replica: chat_pb2_grpc.ChatServiceStub,
    channel: grpc.Channel,
    accounts: dict[str, Account],
    dialog: str,
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    sent = [_send(channel, attendee, dialog, f"missed {n}") for n in range(3)]
    watcher = Watcher(watch_replica, host, chat_dialog_id=dialog, after_message_id=sent[0].id)
    try:
        assert watcher.messages(2) == ["missed 1", "missed 2"]
        _send(channel, attendee, dialog, "live again")
        assert watcher.messages(1) == ["live again"]
    finally:
        watcher.cancel()


def test_refusals_come_before_the_stream(
    watch_replica: chat_pb2_grpc.ChatServiceStub,
    channel: grpc.Channel,
    accounts: dict[str, Account],
    dialog: str,
) -> None:
    stranger = Watcher(watch_replica, accounts["stranger"], chat_dialog_id=dialog)
    error = stranger.next()
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "You are not a member of this dialog"

    unknown = Watcher(
        watch_replica, accounts["host"], chat_dialog_id=dialog, after_message_id="0" * 24
    )
    error = unknown.next()
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert list(rpc_helpers.field_violations(error)) == ["after_message_id"]

    nobody = Account(0, "nobody", "", "not-a-token")
    error = Watcher(watch_replica, nobody, chat_dialog_id=dialog).next()
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def test_a_removed_attendee_gets_nothing_more_and_the_stream_ends(
    watch_replica: chat_pb2_grpc.ChatServiceStub,
    channel: grpc.Channel,
    meeting_stub: meetings_pb2_grpc.MeetingServiceStub,
    accounts: dict[str, Account],
    dialog: str,
) -> None:
    host, attendee = accounts["host"], accounts["attendee"]
    watcher = Watcher(watch_replica, attendee, chat_dialog_id=dialog)
    # Live first (its first keepalive): a watch starts after the messages sent before it.
    assert isinstance(watcher.next(), chat_pb2.DialogEvent)
    _send(channel, host, dialog, "still in")
    assert watcher.messages(1) == ["still in"]
    meeting_id = rpc_helpers.listed(meeting_stub, host)[0]
    rpc_helpers.update(meeting_stub, host, meeting_id, mask=["attendees"], attendees=[])
    _send(channel, host, dialog, "after the removal")
    error = watcher.end()
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED


def test_signing_out_ends_the_watch(
    watch_replica: chat_pb2_grpc.ChatServiceStub,
    channel: grpc.Channel,
    accounts: dict[str, Account],
    dialog: str,
) -> None:
    host = accounts["host"]
    watcher = Watcher(watch_replica, host, chat_dialog_id=dialog)
    assert isinstance(watcher.next(), chat_pb2.DialogEvent)  # open
    sessions_pb2_grpc.SessionServiceStub(channel).DeleteSession(
        sessions_pb2.DeleteSessionRequest(), metadata=host.metadata
    )
    error = watcher.end()
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED


def _opened(stub: chat_pb2_grpc.ChatServiceStub, account: Account, dialog: str) -> Watcher:
    """A watch that has started (the slots of watches cancelled just before come back once
    their threads notice: a few tries)."""
    for _ in range(50):
        watcher = Watcher(stub, account, chat_dialog_id=dialog)
        if isinstance(watcher.next(), chat_pb2.DialogEvent):
            return watcher
        time.sleep(0.1)
    pytest.fail("no watch slot came free")


def test_watches_beyond_the_limit_are_refused_until_one_ends(
    watch_replica: chat_pb2_grpc.ChatServiceStub,
    accounts: dict[str, Account],
    dialog: str,
) -> None:
    host = accounts["host"]
    held = [_opened(watch_replica, host, dialog) for _ in range(2)]  # CHAT_WATCHES_MAX
    try:
        refused = Watcher(watch_replica, host, chat_dialog_id=dialog).next()
        assert isinstance(refused, grpc.RpcError)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert refused.details() == "Too many requests, try again in 5 s"
        assert rpc_helpers.trailers(refused)["retry-after"] == "5"
        held.pop().cancel()
        held.append(_opened(watch_replica, host, dialog))
    finally:
        for watcher in held:
            watcher.cancel()


def test_a_message_wakes_a_watch_on_another_replica_long_before_its_keepalive(
    watch_replica: chat_pb2_grpc.ChatServiceStub,
    channel: grpc.Channel,
    grpc_server: app.Service,
    accounts: dict[str, Account],
    dialog: str,
) -> None:
    """The watch is on the in-process server (keepalives every 25 s: re-reads only then,
    without a notification); the message is sent through the replica process."""
    assert grpc_server.settings.chat_watch_keepalive_seconds > 2 * WAIT
    host, attendee = accounts["host"], accounts["attendee"]
    before = _send(channel, attendee, dialog, "before")
    # After `before`: a message sent while the watch is still starting is not lost either.
    watcher = Watcher(
        chat_pb2_grpc.ChatServiceStub(channel),
        host,
        chat_dialog_id=dialog,
        after_message_id=before.id,
    )
    try:
        time.sleep(0.5)  # the watch is waiting by now: the notification is what wakes it
        request = chat_pb2.CreateMessageRequest(chat_dialog_id=dialog, message="wake up")
        watch_replica.CreateMessage(request, metadata=attendee.metadata)
        assert watcher.messages(1) == ["wake up"]  # within WAIT, not at the keepalive
    finally:
        watcher.cancel()
