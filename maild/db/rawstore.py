"""Raw mail on disk, content-addressed, so any ticket can be re-read as it was sent."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from maild.errors import TemporaryError

T = TypeVar("T")
_TEMPORARY_PREFIX = "incoming."
# The threads that sync a batch's files at once (see RawStore._settle).
SETTLING_THREADS = 16
SPOOL_DIRECTORY = "spool"
_SPOOL_SUFFIX = ".spool"


def _sync(handle: IO[bytes]) -> None:
    handle.flush()
    os.fsync(handle.fileno())


class RawStore:
    """Files named by the SHA-256 of their content (raw mail; attachments with `.bin`):
    nothing a sender wrote ever becomes part of a path.

    A file is only ever at its name once its bytes are on disk (written to a temporary
    file, synced, then moved), so a name that exists can be trusted after a crash.
    """

    def __init__(self, directory: Path, suffix: str = ".eml") -> None:
        self.directory = directory
        self.suffix = suffix
        # Directories known to exist, so that a message costs no mkdir; at most 65,793,
        # kept as short strings.
        self._made: set[str] = set()
        self._local = threading.local()  # this thread's open batch (see `batch`)
        self._numbers = itertools.count()
        # Made once; its threads start as a batch first needs them (see `_settle`).
        self._syncing = ThreadPoolExecutor(SETTLING_THREADS, thread_name_prefix="raw-store-sync")

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

    def _pending(self) -> dict[str, Path] | None:
        """This thread's batch: the temporary file of each SHA-256 put in it."""
        pending: dict[str, Path] | None = getattr(self._local, "pending", None)
        return pending

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Files put in the block are written at once and made durable together as it
        ends: the disk is waited on once per batch instead of once per file, which is
        most of what storing a small message costs. They are readable by `get` in the
        block, at their names once it ends, and gone if it fails. The caller commits
        what refers to them only after the block (a batch inside a batch is the outer
        one)."""
        if self._pending() is not None:
            yield
            return
        pending: dict[str, Path] = {}
        self._local.pending = pending
        try:
            yield
            self._settle(pending)
        finally:
            self._local.pending = None
            for temporary in pending.values():  # moved into place, or never to be
                with contextlib.suppress(OSError):
                    temporary.unlink(missing_ok=True)

    def _settle(self, pending: dict[str, Path]) -> None:
        """Every file synced, then each moved to its name. The syncs are asked for all at
        once, from a few threads: the file system commits what they wait for together
        (a batch of fifty costs about two waits on the disk instead of fifty)."""
        for _ in self._syncing.map(self._sync_file, pending.values()):
            pass
        for sha256, temporary in pending.items():
            self._guarded(self._move_into_place, temporary, self.path_for(sha256))

    def _sync_file(self, path: Path) -> None:
        with self._guarded(open, path, "rb") as handle:
            self._guarded(os.fsync, handle.fileno())

    def put(self, raw: bytes) -> str:
        """Store the bytes durably and return their SHA-256; storing twice is free. In
        a `batch`, durably means once the batch ends."""
        sha256 = hashlib.sha256(raw).hexdigest()
        pending = self._pending()
        if (pending is not None and sha256 in pending) or self.path_for(sha256).exists():
            return sha256
        if pending is not None:
            pending[sha256] = self._write_temporary([raw], sync=False)
            return sha256
        return self._write([raw], known=sha256)

    def put_chunks(self, chunks: Iterable[bytes]) -> str:
        """Store a message too big to hold in memory at once, as it arrives.

        A fault of the source (a dropped connection) propagates as it is; only faults of
        the disk become "cannot store".
        """
        return self._write(chunks)

    def _write(self, chunks: Iterable[bytes], known: str | None = None) -> str:
        """Write to a synced temporary file, then move it to the name of its hash
        (`known` when the caller has already computed it: a message is hashed once)."""
        digest = hashlib.sha256()
        temporary = self._write_temporary(chunks, sync=True,
                                          each_chunk=None if known else digest.update)
        try:
            sha256 = known or digest.hexdigest()
            self._guarded(self._move_into_place, temporary, self.path_for(sha256))
        finally:
            with contextlib.suppress(OSError):  # the fault being raised matters more
                temporary.unlink(missing_ok=True)
        return sha256

    def _write_temporary(self, chunks: Iterable[bytes], *, sync: bool,
                         each_chunk: Callable[[bytes], object] | None = None) -> Path:
        name = f"{_TEMPORARY_PREFIX}{os.getpid()}.{threading.get_ident()}.{next(self._numbers)}.tmp"
        temporary = self.directory / name
        try:
            with self._guarded(self._open_new, temporary) as handle:
                for chunk in chunks:
                    if each_chunk is not None:
                        each_chunk(chunk)
                    self._guarded(handle.write, chunk)
                if sync:
                    self._guarded(_sync, handle)
        except BaseException:
            with contextlib.suppress(OSError):  # the fault being raised matters more
                temporary.unlink(missing_ok=True)
            raise
        return temporary

    def _guarded(self, operation: Callable[..., T], *args: Any) -> T:
        try:
            return operation(*args)
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise TemporaryError(f"cannot store raw mail under {self.directory}: {reason}") from exc

    def remove_stale_temporaries(self, older_than_seconds: float = 3600) -> int:
        """Remove the temporary files a killed process left behind; returns how many.

        A live writer touches its file at least once per batch, which takes seconds, so
        one untouched for an hour belongs to no one, even with another maild writing
        here. File times are the kernel's, hence its clock rather than maild's."""
        cutoff = time.time() - older_than_seconds
        removed = 0
        for path in self.directory.glob(f"{_TEMPORARY_PREFIX}*.tmp"):
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed

    def spool(self) -> SpoolFile:
        """A new file in the store's spool (beside the store, so that keeping it is a
        rename), for a message written as it arrives: see `SpoolFile`."""
        directory = self.directory / SPOOL_DIRECTORY
        while True:
            name = f"{os.getpid()}.{threading.get_ident()}.{next(self._numbers)}{_SPOOL_SUFFIX}"
            path = directory / name
            handle = self._guarded(self._in_directory, path, functools.partial(open, path, "xb"))
            if _locked(handle) and os.fstat(handle.fileno()).st_nlink > 0:
                return SpoolFile(self, path, handle)
            # A starting maild took it for abandoned in the instant between its creation
            # and its lock, and removes it or has removed it already: this one takes
            # another name.
            handle.close()

    def remove_abandoned_spools(self) -> int:
        """Remove the spool files of messages a stopped maild was receiving; returns how
        many. Their senders were never answered 250 and send them again. A file in use
        is locked by its writer (in any process, on any machine sharing the directory),
        and left alone."""
        removed = 0
        for path in (self.directory / SPOOL_DIRECTORY).glob(f"*{_SPOOL_SUFFIX}"):
            with contextlib.suppress(OSError), open(path, "rb") as handle:
                if _locked(handle):
                    path.unlink()
                    removed += 1
        return removed

    def get(self, sha256: str) -> bytes:
        pending = self._pending()
        if pending is not None and sha256 in pending:
            return pending[sha256].read_bytes()
        return self.path_for(sha256).read_bytes()


def _locked(handle: IO[bytes]) -> bool:
    """Whether this process now holds the file's lock (released when it is closed)."""
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class SpoolFile:
    """One message being written as it arrives, locked by its writer until it is kept
    in the store or discarded. Its SHA-256 is computed as it is written, so keeping it
    is a sync and a rename: the message is never copied."""

    def __init__(self, store: RawStore, path: Path, handle: IO[bytes]) -> None:
        self.store = store
        self.path = path
        self.size = 0
        self._handle: IO[bytes] | None = handle
        self._digest = hashlib.sha256()

    def write(self, data: bytes) -> None:
        assert self._handle is not None, "written after it was kept or discarded"
        self.store._guarded(self._handle.write, data)
        self._digest.update(data)
        self.size += len(data)

    def read(self) -> bytes:
        """What was written so far (a message small enough to be kept elsewhere)."""
        assert self._handle is not None, "read after it was kept or discarded"
        self.store._guarded(self._handle.flush)
        return self.store._guarded(self.path.read_bytes)

    def keep(self) -> str:
        """Make the file durable at the name of its SHA-256, which is returned."""
        assert self._handle is not None, "kept after it was kept or discarded"
        sha256 = self._digest.hexdigest()
        self.store._guarded(_sync, self._handle)
        self.store._guarded(self.store._move_into_place, self.path, self.store.path_for(sha256))
        self._close()
        return sha256

    def discard(self) -> None:
        """Remove the file, unless it was kept; calling it again does nothing."""
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            self._close()

    def _close(self) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()
