"""Where recording files live. Domain code sees only the `Storage` protocol: files in a folder
here (the embedded default, one machine), objects in an S3-compatible store in
`recording_objects` (several machines)."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

CHUNK = 256 * 1024
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")
_PARTIAL = ".upload-"


class FileMissing(LookupError):
    """No file under the key (a row whose file was lost, or a store that is not shared)."""


class StorageUnavailable(OSError):
    """The store could not be reached or refused the call; try again later."""


def check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"bad storage key {key!r}")
    return key


@dataclass(frozen=True)
class StoredFile:
    key: str
    size: int
    sha256: str


class Upload(Protocol):
    def write(self, data: bytes) -> None: ...

    def written(self) -> StoredFile:
        """The size and checksum of what was written so far (nothing is visible yet)."""
        ...

    def commit(self) -> StoredFile:
        """Make the file visible under its key, atomically; returns its size and checksum."""
        ...

    def abort(self) -> None:
        """Discard everything written; the key stays absent."""
        ...


class Storage(Protocol):
    def check(self) -> None:
        """Raises StorageUnavailable unless the store answers (at start-up: fail loudly)."""
        ...

    def begin(self, key: str) -> Upload: ...

    def read(self, key: str) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def signed_url(
        self, key: str, ttl_seconds: int, file_name: str, content_type: str
    ) -> str | None:
        """The store's own expiring link to the file, or None (the gateway signs its own)."""
        ...

    def sweep(self, known: Callable[[list[str]], set[str]], older_than: datetime) -> int:
        """Remove files last written before `older_than` whose keys `known` does not return,
        and partial uploads begun before it; returns how many."""
        ...


class _FileUpload:
    def __init__(self, final: Path) -> None:
        self._final = final
        handle, name = tempfile.mkstemp(dir=final.parent, prefix=_PARTIAL, suffix=".part")
        self._file = os.fdopen(handle, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._hash.update(data)
        self._size += len(data)

    def written(self) -> StoredFile:
        return StoredFile(self._final.name, self._size, self._hash.hexdigest())

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
        return self.written()

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
        return self.root / check_key(key)

    def check(self) -> None:
        if not os.access(self.root, os.W_OK):
            raise StorageUnavailable(f"{self.root} is not writable")

    def begin(self, key: str) -> Upload:
        return _FileUpload(self._path(key))

    def read(self, key: str) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError:
            raise FileMissing(key) from None
        with handle:
            while chunk := handle.read(CHUNK):
                yield chunk

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def signed_url(self, key: str, ttl_seconds: int, file_name: str, content_type: str) -> None:
        return None

    def sweep(self, known: Callable[[list[str]], set[str]], older_than: datetime) -> int:
        cutoff = older_than.timestamp()
        partial: list[str] = []
        complete: list[str] = []
        for entry in os.scandir(self.root):
            if entry.is_file() and entry.stat().st_mtime < cutoff:
                (partial if entry.name.startswith(_PARTIAL) else complete).append(entry.name)
        orphans = partial + sorted(set(complete) - known(complete))
        for name in orphans:
            (self.root / name).unlink(missing_ok=True)
        return len(orphans)
