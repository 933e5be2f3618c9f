"""Where recording files live. Domain code sees only the `Storage` protocol, so an
S3-compatible backend can be added beside `FilesystemStorage` without touching it."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

CHUNK = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    sha256: str


class Upload(Protocol):
    def write(self, data: bytes) -> None: ...

    def commit(self) -> StoredFile:
        """Make the file visible under its key, atomically; returns its size and checksum."""
        ...

    def abort(self) -> None:
        """Discard everything written; the key stays absent."""
        ...


class Storage(Protocol):
    def begin(self, key: str) -> Upload: ...

    def read(self, key: str) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...


class _FileUpload:
    def __init__(self, final: Path) -> None:
        self._final = final
        handle, name = tempfile.mkstemp(dir=final.parent, prefix=".upload-", suffix=".part")
        self._file = os.fdopen(handle, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def commit(self) -> StoredFile:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self._final)  # atomic on one filesystem
        directory = os.open(self._final.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)
        self._done = True
        return StoredFile(self._final.name, self._size, self._hash.hexdigest())

    def abort(self) -> None:
        if not self._done:
            self._file.close()
            self._tmp.unlink(missing_ok=True)
            self._done = True


class FilesystemStorage:
    """Files in one folder, named by key; writes go to a temp file renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not _KEY.match(key):
            raise ValueError(f"bad storage key {key!r}")
        return self.root / key

    def begin(self, key: str) -> Upload:
        return _FileUpload(self._path(key))

    def read(self, key: str) -> Iterator[bytes]:
        with self._path(key).open("rb") as handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
