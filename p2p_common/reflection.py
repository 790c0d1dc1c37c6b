"""Server reflection under both names clients ask for: grpc.reflection.v1 and v1alpha.

grpcio-reflection serves only the older v1alpha; newer clients (grpcurl 1.9+, grpcui, Postman,
Java's and Go's reflection clients) ask for v1 first. The two protocols are the same messages
under another package, so v1 is served by the same servicer with the same message classes, and
its file descriptor is derived from v1alpha's (package and type names renamed) so that v1
itself can be described. Go's gRPC registers both the same way.
"""

from __future__ import annotations

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha

V1_PACKAGE = "grpc.reflection.v1"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _add_v1_descriptor() -> None:
    """Put grpc/reflection/v1/reflection.proto in the default pool (once), made from v1alpha's."""
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    v1 = descriptor_pb2.FileDescriptorProto()
    v1alpha.DESCRIPTOR.CopyToProto(v1)
    old = f".{v1.package}."

    def renamed(type_name: str) -> str:
        return f".{V1_PACKAGE}.{type_name[len(old) :]}" if type_name.startswith(old) else type_name

    for message in v1.message_type:
        for f in message.field:
            if f.HasField("type_name"):
                f.type_name = renamed(f.type_name)
    for service in v1.service:
        for method in service.method:
            method.input_type, method.output_type = renamed(method.input_type), renamed(method.output_type)
    v1.name, v1.package = _V1_FILE, V1_PACKAGE
    v1.options.Clear()  # v1alpha's options name its own Java and Go packages
    pool.AddSerializedFile(v1.SerializeToString())


def enable_reflection(service_names: list[str], server: grpc.Server) -> None:
    """Serve reflection (v1 and v1alpha) listing service_names and the reflection services."""
    _add_v1_descriptor()
    names = [*service_names, V1_SERVICE_NAME, reflection.SERVICE_NAME]
    servicer = reflection.ReflectionServicer(names)
    for service in (V1_SERVICE_NAME, reflection.SERVICE_NAME):
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=v1alpha.ServerReflectionRequest.FromString,
            response_serializer=v1alpha.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"ServerReflectionInfo": handler}),))
