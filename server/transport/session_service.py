"""The sessions servicer: password and guest sign-in, the current session, sign-out."""

from __future__ import annotations

import grpc

from meetings.v1 import sessions_pb2, sessions_pb2_grpc
from server.domain import auth, errors
from server.settings import Settings
from server.transport import convert, rpc

Context = grpc.ServicerContext


class SessionService(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self._ttl = settings.token_ttl_seconds

    @rpc.handler(authenticated=False)
    def CreateSession(
        self, request: sessions_pb2.CreateSessionRequest, context: Context, caller: None
    ) -> sessions_pb2.SessionResponse:
        user = request.user
        if user.guest.strip().lower() in ("1", "true"):
            return convert.session_to_pb(auth.sign_in_guest(user.full_name, self._ttl))
        problems = errors.FieldErrors()
        if not user.login:
            problems.add("login", "is required")
        if not user.password:
            problems.add("password", "is required")
        problems.raise_if_any()
        return convert.session_to_pb(auth.sign_in(user.login, user.password, self._ttl))

    @rpc.handler()
    def GetSession(
        self, request: sessions_pb2.GetSessionRequest, context: Context, caller: auth.Caller
    ) -> sessions_pb2.SessionResponse:
        return convert.session_to_pb(auth.get_session(caller))

    @rpc.handler()
    def DeleteSession(
        self, request: sessions_pb2.DeleteSessionRequest, context: Context, caller: auth.Caller
    ) -> sessions_pb2.DeleteSessionResponse:
        auth.sign_out(caller)
        return sessions_pb2.DeleteSessionResponse()
