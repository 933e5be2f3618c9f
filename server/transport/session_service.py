"""The sessions servicer: application, password and guest sessions, sign-in to a session
(POST /login) and out of it, the current session, and its end."""

from __future__ import annotations

import grpc

from meetings.v1 import sessions_pb2, sessions_pb2_grpc, users_pb2
from server.domain import applications, auth, errors, rate_limits, text, users
from server.settings import Settings
from server.transport import convert, rpc

Context = grpc.ServicerContext


class SessionService(sessions_pb2_grpc.SessionServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self._ttl = settings.token_ttl_seconds
        self._per_address = rate_limits.Limit(*settings.rate_sign_in_per_address)
        self._per_login = rate_limits.Limit(*settings.rate_failed_sign_in_per_login)
        self._guests = rate_limits.Limit(*settings.rate_guest_per_address)

    @rpc.handler(authenticated=False)
    def CreateSession(
        self, request: sessions_pb2.CreateSessionRequest, context: Context, caller: None
    ) -> sessions_pb2.SessionResponse:
        app_id = _application(request)
        user = request.user
        if not request.HasField("user"):
            if app_id is None:
                raise errors.InvalidFields({"application_id": ["is required"]})
            return convert.session_to_pb(auth.start_application_session(app_id, self._ttl))
        if user.guest.strip().lower() in ("1", "true"):
            auth.guest_name(user.full_name)  # a refused name is not counted
            rate_limits.hit(f"guest:{rpc.client_address(context)}", self._guests)
            return convert.session_to_pb(auth.sign_in_guest(user.full_name, self._ttl))
        _require_credentials(user.login, user.email, user.password)
        user_id = self._verify(context, user.login, user.email, user.password)
        session = auth.sign_in_verified(user_id, self._ttl, app_id)
        return convert.session_to_pb(session, users.get(user_id, user_id))

    def _verify(self, context: Context, login: str, email: str, password: str) -> int:
        """The user of these credentials, counted against the sign-in limits."""
        text.require(login=login, email=email, password=password)  # before keys are made of them
        rate_limits.hit(f"sign-in:{rpc.client_address(context)}", self._per_address)
        key = f"sign-in-failed:{(login or email).strip().lower()[:256]}"
        rate_limits.check(key, self._per_login)
        try:
            return int(auth.verified_user(login, email, password).id)
        except errors.Unauthenticated:
            rate_limits.hit(key, self._per_login)
            raise

    @rpc.handler(credential=rpc.SESSION)
    def GetSession(
        self, request: sessions_pb2.GetSessionRequest, context: Context, caller: auth.SessionRef
    ) -> sessions_pb2.SessionResponse:
        view = auth.get_session(caller, rpc.token(context))
        user = None if caller.user is None else users.get(view.user_id, view.user_id)
        return convert.session_to_pb(view, user)

    @rpc.handler(credential=rpc.SESSION)
    def DeleteSession(
        self, request: sessions_pb2.DeleteSessionRequest, context: Context, caller: auth.SessionRef
    ) -> sessions_pb2.DeleteSessionResponse:
        auth.sign_out(caller)
        return sessions_pb2.DeleteSessionResponse()

    @rpc.handler(credential=rpc.SESSION)
    def Login(
        self, request: sessions_pb2.LoginRequest, context: Context, caller: auth.SessionRef
    ) -> users_pb2.UserResponse:
        _require_credentials(request.login, request.email, request.password)
        user_id = self._verify(context, request.login, request.email, request.password)
        auth.log_in(caller, user_id)
        return users_pb2.UserResponse(user=convert.user_to_pb(users.get(user_id, user_id)))

    @rpc.handler(credential=rpc.SESSION)
    def Logout(
        self, request: sessions_pb2.LogoutRequest, context: Context, caller: auth.SessionRef
    ) -> sessions_pb2.LogoutResponse:
        auth.log_out(caller)
        return sessions_pb2.LogoutResponse()


def _require_credentials(login: str, email: str, password: str) -> None:
    problems = errors.FieldErrors()
    if not login and not email:
        problems.add("login", "or email is required")
    if not password:
        problems.add("password", "is required")
    problems.raise_if_any()


def _application(request: sessions_pb2.CreateSessionRequest) -> int | None:
    """The application id if the request carries its credentials (checked), else None."""
    if not request.application_id and not request.auth_key:
        return None
    signed = None
    if request.signature:
        signed = {
            "application_id": str(request.application_id),
            "auth_key": request.auth_key,
            "nonce": str(request.nonce),
            "timestamp": str(request.timestamp),
            "signature": request.signature,
        }
        for name in ("login", "email", "password"):
            if getattr(request.user, name):
                signed[f"user[{name}]"] = getattr(request.user, name)
    return applications.check(request.application_id, request.auth_key, signed)
