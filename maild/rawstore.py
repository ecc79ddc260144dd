"""Raw mail on disk, content-addressed, so any ticket can be re-read as it was sent."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

from maild.errors import TemporaryError


class RawStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path_for(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / sha256[2:4] / f"{sha256}.eml"

    def put(self, raw: bytes) -> str:
        """Store the bytes durably and return their SHA-256; storing twice is free."""
        sha256 = hashlib.sha256(raw).hexdigest()
        path = self.path_for(sha256)
        if path.exists():
            return sha256
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temporary = path.with_suffix(f".tmp{os.getpid()}")
            with open(temporary, "wb") as handle:
                handle.write(raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror
            raise TemporaryError(f"cannot store raw mail under {self.directory}: {reason}") from exc
        return sha256

    def get(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()
