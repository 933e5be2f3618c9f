"""The chat servicer: a meeting's dialog and its messages, for the dialog's occupants."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
from google.protobuf import struct_pb2

from meetings.v1 import chat_pb2, chat_pb2_grpc
from server.domain import auth, chat_messages, chat_watch, errors
from server.storage.listen import Fanout
from server.transport import convert, rpc

Context = grpc.ServicerContext
# What a watch refused for want of a thread is told to wait before trying again.
WATCH_RETRY_SECONDS = 5


class ChatService(chat_pb2_grpc.ChatServiceServicer):
    def __init__(
        self,
        fanout: Fanout,
        *,
        watches_max: int,
        keepalive_seconds: float,
        stopping: threading.Event,
    ) -> None:
        self._fanout = fanout
        # Each watch holds a thread of the server's pool for as long as it lasts; the pool
        # has this many beyond GRPC_WORKERS (app.Service), so watches never starve calls.
        self._watch_slots = threading.BoundedSemaphore(watches_max) if watches_max else None
        self._keepalive_seconds = keepalive_seconds
        self._stopping = stopping

    @rpc.handler()
    def ListDialogs(
        self, request: chat_pb2.ListDialogsRequest, context: Context, caller: auth.Caller
    ) -> chat_pb2.DialogPage:
        wanted = request.id  # `_id` and `in` are Python keywords' neighbours:
        dialog_ids = [*([wanted.eq] if wanted.eq else []), *getattr(wanted, "in")]  # by name
        limit = request.limit or chat_messages.PAGE_MAX
        page = chat_messages.dialogs(caller, dialog_ids, limit, request.skip)
        return convert.dialog_page_to_pb(page)

    @rpc.handler()
    def SubscribeDialog(
        self, request: chat_pb2.SubscribeDialogRequest, context: Context, caller: auth.Caller
    ) -> chat_pb2.Dialog:
        dialog = chat_messages.subscribe(caller, request.id)
        return convert.dialog_to_pb(dialog)

    @rpc.handler()
    def ListMessages(
        self, request: chat_pb2.ListMessagesRequest, context: Context, caller: auth.Caller
    ) -> chat_pb2.MessagePage:
        page = chat_messages.history(caller, convert.history_query(request))
        return chat_pb2.MessagePage(
            skip=page.offset,
            limit=page.limit,
            items=[convert.chat_message_to_pb(m) for m in page.items],
        )

    @rpc.handler()
    def CreateMessage(
        self, request: chat_pb2.CreateMessageRequest, context: Context, caller: auth.Caller
    ) -> chat_pb2.Message:
        if request.recipient_id:
            raise errors.InvalidFields(
                {"recipient_id": ["is for private chats; a meeting's dialog is a group chat"]}
            )
        sent = chat_messages.send(
            caller, request.chat_dialog_id, request.message, convert.attachments(request)
        )
        return convert.chat_message_to_pb(sent)

    @rpc.handler()
    def UpdateMessages(
        self, request: chat_pb2.UpdateMessagesRequest, context: Context, caller: auth.Caller
    ) -> chat_pb2.UpdateMessagesResponse:
        chat_messages.update(
            caller,
            request.ids,
            request.chat_dialog_id,
            read=bool(request.read),
            delivered=bool(request.delivered),
            new_text=request.message if request.HasField("message") else None,
        )
        return chat_pb2.UpdateMessagesResponse()

    @rpc.handler()
    def DeleteMessages(
        self, request: chat_pb2.DeleteMessagesRequest, context: Context, caller: auth.Caller
    ) -> chat_pb2.DeleteMessagesResponse:
        return convert.deletion_to_pb(chat_messages.delete(caller, request.ids))

    @rpc.handler(live=True)
    def WatchDialog(
        self, request: chat_pb2.WatchDialogRequest, context: Context, caller: auth.Caller
    ) -> Iterator[chat_pb2.DialogEvent]:
        after = request.after_message_id if request.HasField("after_message_id") else None
        watch = chat_watch.Watch(
            self._fanout,
            caller,
            rpc.token(context),
            request.chat_dialog_id,
            after,
            self._keepalive_seconds,
        )
        context.add_callback(watch.cancel)
        return self._watched(watch, context)

    def _watched(self, watch: chat_watch.Watch, context: Context) -> Iterator[chat_pb2.DialogEvent]:
        # The slot is taken here, in the generator, so that it is given back in `finally` (a
        # generator that never started would not run it).
        if self._watch_slots is None or not self._watch_slots.acquire(blocking=False):
            raise errors.TooManyRequests(WATCH_RETRY_SECONDS)
        try:
            events = watch.events(lambda: context.is_active() and not self._stopping.is_set())
            for event in events:
                yield convert.dialog_event_to_pb(event)
        finally:
            self._watch_slots.release()

    @rpc.handler()
    def CountUnread(
        self, request: chat_pb2.CountUnreadRequest, context: Context, caller: auth.Caller
    ) -> struct_pb2.Struct:
        wanted = [d.strip() for d in request.chat_dialog_ids.split(",") if d.strip()]
        counts = struct_pb2.Struct()
        counts.update(chat_messages.unread_counts(caller, wanted))
        return counts
