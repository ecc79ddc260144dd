"""Raw mail on disk, content-addressed, so any ticket can be re-read as it was sent."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, TypeVar

from maild.errors import TemporaryError

T = TypeVar("T")


def _sync(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


class RawStore:
    """Files named by the SHA-256 of their content (raw mail; attachments with `.bin`):
    nothing a sender wrote ever becomes part of a path."""

    def __init__(self, directory: Path, suffix: str = ".eml") -> None:
        self.directory = directory
        self.suffix = suffix
        # Directories known to exist, so that a message costs no mkdir; at most 65,793,
        # kept as short strings.
        self._made: set[str] = set()

    def _make_directory(self, path: Path) -> None:
        key = str(path)
        if key not in self._made:
            path.mkdir(parents=True, exist_ok=True)
            self._made.add(key)

    def _in_directory(self, path: Path, operation: Callable[[], T]) -> T:
        self._make_directory(path.parent)
        try:
            return operation()
        except FileNotFoundError:  # the directory was removed behind our back
            self._made.discard(str(path.parent))
            self._make_directory(path.parent)
            return operation()

    def _open_new(self, path: Path) -> IO[bytes]:
        return self._in_directory(path, lambda: open(path, "wb"))

    def _move_into_place(self, temporary: Path, path: Path) -> None:
        self._in_directory(path, lambda: os.replace(temporary, path))

    def path_for(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / sha256[2:4] / f"{sha256}{self.suffix}"

    def put(self, raw: bytes) -> str:
        """Store the bytes durably and return their SHA-256; storing twice is free."""
        sha256 = hashlib.sha256(raw).hexdigest()
        if self.path_for(sha256).exists():
            return sha256
        return self._write([raw], known=sha256)

    def put_chunks(self, chunks: Iterable[bytes]) -> str:
        """Store a message too big to hold in memory at once, as it arrives.

        A fault of the source (a dropped connection) propagates as it is; only faults of
        the disk become "cannot store".
        """
        return self._write(chunks)

    def _write(self, chunks: Iterable[bytes], known: str | None = None) -> str:
        """Write to a temporary file, then move it to the name of its hash (`known`
        when the caller has already computed it: the per-message path hashes once)."""
        digest = hashlib.sha256()
        temporary = self.directory / f"incoming.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            handle = self._guarded(self._open_new, temporary)
            with handle:
                for chunk in chunks:
                    if known is None:
                        digest.update(chunk)
                    self._guarded(handle.write, chunk)
                self._guarded(_sync, handle)
            sha256 = known or digest.hexdigest()
            self._guarded(self._move_into_place, temporary, self.path_for(sha256))
        finally:
            with contextlib.suppress(OSError):  # the fault being raised matters more
                temporary.unlink(missing_ok=True)
        return sha256

    def _guarded(self, operation: Callable[..., T], *args: Any) -> T:
        try:
            return operation(*args)
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise TemporaryError(f"cannot store raw mail under {self.directory}: {reason}") from exc

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()
