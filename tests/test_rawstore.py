"""The raw store: content-addressed files, at their name only once they are on disk."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from maild.db import rawstore
from maild.db.rawstore import RawStore


@pytest.fixture
def fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every fsync the store asks for, still done for real."""
    calls: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        calls.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    return calls


def test_a_file_put_alone_is_synced_before_it_has_its_name(
    tmp_path: Path, fsyncs: list[int]
) -> None:
    store = RawStore(tmp_path / "raw")
    sha256 = store.put(b"one message")
    assert sha256 == hashlib.sha256(b"one message").hexdigest()
    assert store.path_for(sha256).read_bytes() == b"one message"
    assert len(fsyncs) == 1


def test_a_batch_waits_on_the_disk_once_as_it_ends(tmp_path: Path, fsyncs: list[int]) -> None:
    store = RawStore(tmp_path / "raw")
    with store.batch():
        names = [store.put(f"message {n}".encode()) for n in range(5)]
        assert store.put(b"message 0") == names[0]  # twice in one batch: one file
        assert fsyncs == []
        assert not any(store.path_for(name).exists() for name in names)
        assert store.get(names[3]) == b"message 3"  # readable before it is durable
    assert len(fsyncs) == 5
    assert [store.get(name) for name in names] == [f"message {n}".encode() for n in range(5)]
    assert not list((tmp_path / "raw").glob("*.tmp"))


def test_the_files_of_a_batch_are_synced_at_once_not_one_after_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file system commits syncs that wait together as one: a batch asks for all of
    its files' at once. Here the first two syncs each wait for the other to have begun,
    which only syncs asked for at once get past."""
    both_begun = threading.Barrier(2, timeout=30)
    in_flight: list[int] = []
    real_fsync = os.fsync

    def meeting_fsync(fd: int) -> None:
        in_flight.append(fd)
        if len(in_flight) <= 2:
            both_begun.wait()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", meeting_fsync)
    store = RawStore(tmp_path / "raw")
    with store.batch():
        names = [store.put(f"message {n}".encode()) for n in range(8)]
    assert len(in_flight) == 8
    assert [store.path_for(name).read_bytes() for name in names] == [
        f"message {n}".encode() for n in range(8)]


def test_a_batch_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    store = RawStore(tmp_path / "raw")
    kept = store.put(b"stored before")
    with pytest.raises(RuntimeError), store.batch():
        lost = store.put(b"stored in the failed batch")
        assert store.put(b"stored before") == kept
        raise RuntimeError("the transaction of the batch failed")
    assert not store.path_for(lost).exists()
    assert store.get(kept) == b"stored before"
    assert not list((tmp_path / "raw").glob("*.tmp"))


def test_temporary_files_a_killed_process_left_are_removed_once_stale(tmp_path: Path) -> None:
    store = RawStore(tmp_path / "raw")
    kept = store.put(b"a stored message")
    left = tmp_path / "raw" / "incoming.4242.1.7.tmp"  # a SIGKILL in the middle of a batch
    left.write_bytes(b"half a batch")
    an_hour_ago = time.time() - 3700
    os.utime(left, (an_hour_ago, an_hour_ago))
    with store.batch():
        store.put(b"being written right now")
        assert store.remove_stale_temporaries() == 1
    assert not left.exists()
    assert store.get(kept) == b"a stored message"
    assert store.get(hashlib.sha256(b"being written right now").hexdigest())


def test_a_spool_file_becomes_the_raw_mail_by_a_rename(tmp_path: Path) -> None:
    store = RawStore(tmp_path / "raw")
    spool = store.spool()
    spool.write(b"Subject: big\r\n\r\n")
    spool.write(b"x" * 100_000 + b"\r\n")
    written = spool.path.stat().st_ino

    sha256 = spool.keep()

    raw = b"Subject: big\r\n\r\n" + b"x" * 100_000 + b"\r\n"
    assert sha256 == hashlib.sha256(raw).hexdigest()
    assert store.get(sha256) == raw
    assert store.path_for(sha256).stat().st_ino == written  # not a copy
    assert not spool.path.exists()
    spool.discard()  # after keep: nothing to discard
    assert store.get(sha256) == raw


def test_only_abandoned_spool_files_are_removed(tmp_path: Path) -> None:
    store = RawStore(tmp_path / "raw")
    in_use = store.spool()
    in_use.write(b"being received")
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys; from pathlib import Path; "
        "from maild.db.rawstore import RawStore; "
        "spool = RawStore(Path(sys.argv[1])).spool(); spool.write(b'half a message'); "
        "print(spool.path, flush=True); os.kill(os.getpid(), signal.SIGKILL)"),
        str(store.directory)], capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    abandoned = Path(killed.stdout.strip())
    assert abandoned.exists()

    assert store.remove_abandoned_spools() == 1
    assert not abandoned.exists()
    assert in_use.path.exists()
    in_use.write(b", and on")
    assert store.get(in_use.keep()) == b"being received, and on"
    assert store.remove_abandoned_spools() == 0


def test_a_spool_file_removed_before_its_writer_locked_it_is_not_written_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A maild starting on another machine that shares the store can find a spool file
    in the instant between its creation and its writer's lock, take it for abandoned,
    and remove it; the writer then locks a file that has no name. The instant cannot be
    provoked between two real processes on demand, so the remover's unlink is played
    into it by wrapping the lock."""
    store = RawStore(tmp_path / "raw")
    lock = rawstore._locked
    removed: list[str] = []

    def removed_just_before(handle: IO[bytes]) -> bool:
        if not removed:
            os.unlink(handle.name)
            removed.append(handle.name)
        return lock(handle)

    monkeypatch.setattr(rawstore, "_locked", removed_just_before)
    spool = store.spool()
    assert str(spool.path) != removed[0]
    spool.write(b"a big message")
    assert store.get(spool.keep()) == b"a big message"
