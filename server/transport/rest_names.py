"""The gateway's descriptor set names each field by its REST key.

Envoy's transcoder prints proto field names (`preserve_proto_field_names`: the REST contract's
keys are snake_case, as our field names are). A few keys cannot be proto names: `_id`, and
the chat deletion's `SuccessfullyDeleted`. protos/ names those fields idiomatically (`id`,
`successfully_deleted`) with the key as `json_name`, and `make gen` runs this over the
descriptor set that Envoy loads, so that the gateway sees the field named by its key, as the
REST contract prints it. Field numbers and types stay, so the bytes on the wire do not change;
path templates that bind a renamed field (`/meetings/{id}`) are rewritten to the new name.

Usage: python -m server.transport.rest_names gateway/meetings.pb (rewritten in place).
"""

import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, descriptor_pb2

OUR_PACKAGE = "meetings."


def default_json_name(name: str) -> str:
    """protoc's JSON name of a field that sets none: lowerCamelCase."""
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def rest_key(field: descriptor_pb2.FieldDescriptorProto | descriptor.FieldDescriptor) -> str:
    """The key REST prints for the field: its json_name where protos/ sets one."""
    return field.json_name if field.json_name != default_json_name(field.name) else field.name


def _messages(
    prefix: str, messages: Iterable[descriptor_pb2.DescriptorProto]
) -> Iterator[tuple[str, descriptor_pb2.DescriptorProto]]:
    for message in messages:
        full_name = f"{prefix}.{message.name}"
        yield full_name, message
        yield from _messages(full_name, message.nested_type)


def rename_fields(files: descriptor_pb2.FileDescriptorSet) -> dict[str, dict[str, str]]:
    """Names our fields by their REST keys; returns {message: {old name: new name}}."""
    renamed: dict[str, dict[str, str]] = {}
    for file in files.file:
        if not file.package.startswith(OUR_PACKAGE):
            continue
        for full_name, message in _messages(f".{file.package}", file.message_type):
            for field in message.field:
                key = rest_key(field)
                if key != field.name:
                    renamed.setdefault(full_name, {})[field.name] = key
                    field.name = key
    return renamed


def _rewrite_rule(rule: http_pb2.HttpRule, names: dict[str, str]) -> None:
    kind = rule.WhichOneof("pattern")
    if kind and kind != "custom":
        template = getattr(rule, kind)
        template = re.sub(
            r"\{([\w.]+)", lambda m: "{" + names.get(m.group(1), m.group(1)), template
        )
        setattr(rule, kind, template)
    rule.body = names.get(rule.body, rule.body)
    for binding in rule.additional_bindings:
        _rewrite_rule(binding, names)


def rewrite(files: descriptor_pb2.FileDescriptorSet) -> None:
    renamed = rename_fields(files)
    for file in files.file:
        for service in file.service:
            for method in service.method:
                names = renamed.get(method.input_type)
                if names and method.options.HasExtension(annotations_pb2.http):
                    _rewrite_rule(method.options.Extensions[annotations_pb2.http], names)


def main(path: str) -> None:
    files = descriptor_pb2.FileDescriptorSet.FromString(Path(path).read_bytes())
    rewrite(files)
    Path(path).write_bytes(files.SerializeToString())


if __name__ == "__main__":
    main(sys.argv[1])
