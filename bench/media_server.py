"""A simulated media server: uploads a recording for a meeting and ends its call, over gRPC.

    .venv/bin/meetings-admin service-key media          # prints MEDIA_KEY (once)
    python -m bench.media_server MEETING_ID --key MEDIA_KEY [--file F] [--seconds 6.5]
        [--participants 811,245] [--address 127.0.0.1:50051] [--watch]

Without --file it uploads a generated WAV tone (audio/x-wav) of --seconds. With --watch it
instead prints recording control events (start/stop) as hosts toggle `record`.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc

from meetings.v1 import recordings_pb2 as pb
from meetings.v1 import recordings_pb2_grpc

CHUNK = 64 * 1024


def tone(seconds: float, rate: int = 8000) -> bytes:
    """A mono 16-bit 440 Hz tone as a WAV file."""
    samples = b"".join(
        struct.pack("<h", int(12000 * math.sin(2 * math.pi * 440 * n / rate)))
        for n in range(int(seconds * rate))
    )
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
    return header + b"data" + struct.pack("<I", len(samples)) + samples


def messages(metadata: pb.RecordingMetadata, data: bytes) -> Iterator[pb.UploadRecordingRequest]:
    yield pb.UploadRecordingRequest(metadata=metadata)
    for start in range(0, len(data), CHUNK):
        yield pb.UploadRecordingRequest(chunk=data[start : start + CHUNK])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("meeting_id", nargs="?", default="")
    parser.add_argument("--key", required=True, help="the media server key")
    parser.add_argument("--address", default="127.0.0.1:50051")
    parser.add_argument("--file", type=Path)
    parser.add_argument("--content-type", default="")
    parser.add_argument("--seconds", type=float, default=6.5)
    parser.add_argument("--participants", default="")
    parser.add_argument("--no-end", action="store_true", help="upload without ending the call")
    parser.add_argument("--watch", action="store_true", help="print recording control events")
    args = parser.parse_args(argv)
    auth = (("cb-service-key", args.key),)
    with grpc.insecure_channel(args.address) as channel:
        media = recordings_pb2_grpc.MediaServiceStub(channel)
        try:
            if args.watch:
                for event in media.WatchRecordingControl(
                    pb.WatchRecordingControlRequest(), metadata=auth
                ):
                    print(event.id, event.meeting_id, event.action, event.created_at, flush=True)
                return 0
            data = args.file.read_bytes() if args.file else tone(args.seconds)
            content_type = args.content_type or ("video/mp4" if args.file else "audio/x-wav")
            metadata = pb.RecordingMetadata(
                meeting_id=args.meeting_id,
                participants_ids=[int(p) for p in args.participants.split(",") if p],
                duration=args.seconds,
                content_type=content_type,
                sha256=hashlib.sha256(data).hexdigest(),
                size=len(data),
            )
            made = media.UploadRecording(messages(metadata, data), metadata=auth)
            print(f"uploaded {made.id} ({made.size} MB), file_uid {made.file_uid}")
            if not args.no_end:
                media.EndCall(pb.EndCallRequest(meeting_id=args.meeting_id), metadata=auth)
                print(f"ended the call of meeting {args.meeting_id}")
        except grpc.RpcError as error:
            print(f"{error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
