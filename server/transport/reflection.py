"""Server reflection in both versions of the protocol: grpc.reflection.v1, which grpcurl,
Postman and grpcui ask for first, and v1alpha, which older tools know only.

grpcio-reflection serves v1alpha only. v1 is the same protocol under another package name
(its messages are v1alpha's, field for field), so the same servicer answers both: v1's method
takes and gives v1alpha's messages, whose bytes are v1's. v1's own file descriptor, the
v1alpha one renamed, is added to the pool so that reflection can describe v1 as well.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

V1ALPHA = "grpc.reflection.v1alpha"
V1 = "grpc.reflection.v1"
V1_SERVICE = f"{V1}.ServerReflection"


def _v1_file() -> descriptor_pb2.FileDescriptorProto:
    """v1alpha's file descriptor under v1's name and package."""
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = "grpc/reflection/v1/reflection.proto"
    proto.package = V1
    proto.ClearField("options")  # v1alpha's Java package and the like
    renamed = (f".{V1ALPHA}.", f".{V1}.")
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):  # messages and enums only
                field.type_name = field.type_name.replace(*renamed)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(*renamed)
            method.output_type = method.output_type.replace(*renamed)
    return proto


def enable(server: grpc.Server, service_names: Iterable[str]) -> None:
    """Serves reflection v1 and v1alpha for `service_names` (and for reflection itself)."""
    pool = descriptor_pool.Default()
    v1_file = _v1_file()
    try:
        pool.FindFileByName(v1_file.name)  # a second server in the same process
    except KeyError:
        pool.Add(v1_file)
    names = [*service_names, reflection.SERVICE_NAME, V1_SERVICE]
    servicer = reflection.ReflectionServicer(names, pool=pool)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(servicer, server)
    v1_info = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": v1_info}),)
    )
