"""The users servicer: sign-up, profiles, the users/v2 search, one's own account."""

from __future__ import annotations

import grpc

from meetings.v1 import users_pb2, users_pb2_grpc
from server.domain import auth, rate_limits, users
from server.settings import Settings
from server.transport import convert, rpc

Context = grpc.ServicerContext


class UserService(users_pb2_grpc.UserServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self._sign_ups = rate_limits.Limit(*settings.rate_sign_up_per_address)

    @rpc.handler(credential=rpc.SIGN_UP)
    def CreateUser(
        self, request: users_pb2.CreateUserRequest, context: Context, caller: object
    ) -> users_pb2.UserResponse:
        key = f"sign-up:{rpc.client_address(context)}"
        with rpc.request_field("user"):
            created = users.sign_up(
                convert.profile_input(request.user), lambda: rate_limits.hit(key, self._sign_ups)
            )
        return users_pb2.UserResponse(user=convert.user_to_pb(created))

    @rpc.handler()
    def GetUser(
        self, request: users_pb2.GetUserRequest, context: Context, caller: auth.Caller
    ) -> users_pb2.UserResponse:
        return users_pb2.UserResponse(
            user=convert.user_to_pb(users.get(caller.user_id, request.id))
        )

    @rpc.handler()
    def ListUsers(
        self, request: users_pb2.ListUsersRequest, context: Context, caller: auth.Caller
    ) -> users_pb2.UserPage:
        page = users.search(caller.user_id, convert.user_query(request))
        return convert.user_page_to_pb(page)

    @rpc.handler()
    def UpdateUser(
        self, request: users_pb2.UpdateUserRequest, context: Context, caller: auth.Caller
    ) -> users_pb2.UserResponse:
        with rpc.request_field("user"):
            changed = users.update(caller, request.id, convert.profile_input(request.user))
        return users_pb2.UserResponse(user=convert.user_to_pb(changed))

    @rpc.handler()
    def DeleteUser(
        self, request: users_pb2.DeleteUserRequest, context: Context, caller: auth.Caller
    ) -> users_pb2.DeleteUserResponse:
        users.delete(caller, request.id)
        return users_pb2.DeleteUserResponse()
