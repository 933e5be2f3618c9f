"""The chat servicer: a meeting's dialog and its messages, for the dialog's occupants."""

from __future__ import annotations

import grpc
from google.protobuf import struct_pb2

from meetings.v1 import chat_pb2, chat_pb2_grpc
from server.domain import auth, chat_messages, errors
from server.transport import convert, rpc

Context = grpc.ServicerContext


class ChatService(chat_pb2_grpc.ChatServiceServicer):
    @rpc.handler()
    def ListDialogs(
        self, request: chat_pb2.ListDialogsRequest, context: Context, caller: auth.Caller
    ) -> chat_pb2.DialogPage:
        wanted = request._id  # `_id` and `in` are Python keywords' neighbours:
        dialog_ids = [*([wanted.eq] if wanted.eq else []), *getattr(wanted, "in")]  # by name
        limit = request.limit or chat_messages.PAGE_MAX
        page = chat_messages.dialogs(caller, dialog_ids, limit, request.skip)
        return convert.dialog_page_to_pb(page)

    @rpc.handler()
    def SubscribeDialog(
        self, request: chat_pb2.SubscribeDialogRequest, context: Context, caller: auth.Caller
    ) -> chat_pb2.Dialog:
        dialog = chat_messages.subscribe(caller, request._id)
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

    @rpc.handler()
    def CountUnread(
        self, request: chat_pb2.CountUnreadRequest, context: Context, caller: auth.Caller
    ) -> struct_pb2.Struct:
        wanted = [d.strip() for d in request.chat_dialog_ids.split(",") if d.strip()]
        counts = struct_pb2.Struct()
        counts.update(chat_messages.unread_counts(caller, wanted))
        return counts
