"""Large mail read from disk without holding it, or its attachments, in memory.

email's parser keeps every part's body in memory several times over (the raw lines, the
joined text, the decoded bytes): a 25 MB attachment costs hundreds of MB. For a large
message, one pass over the stored raw file streams each large base64 part, decoded, into
the attachment store, and leaves a skeleton: the same message with those bodies empty and
a header naming what was stored. The skeleton is parsed as any mail is.

Anything the pass does not fully understand leaves the message as it is, for the
ordinary parser: this is an economy, never a second interpretation of MIME.
"""

from __future__ import annotations

import base64
import binascii
import email.policy
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import IO

from maild.db.rawstore import RawStore
from maild.errors import TemporaryError

# Names the part a pass stored, by a token only that pass knows: a sender who writes
# this header into a mail gains nothing.
STORED_PART = "X-Maild-Stored-Part"
# A base64 body longer than this is streamed to the attachment store.
LARGE_PART_BYTES = 256 * 1024
_DECODE_CHUNK = 1024 * 1024

_WHITESPACE = re.compile(rb"\s+")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredPart:
    sha256: str
    size: int


@dataclass(frozen=True)
class Skeleton:
    raw: bytes  # the message, its large parts emptied and named by STORED_PART
    stored: dict[str, StoredPart]  # by token


def _is_delimiter(line: bytes, delimiter: bytes) -> bool:
    if not line.startswith(delimiter):
        return False
    marker = line.rstrip(b"\r\n").rstrip(b" \t")
    return marker in (delimiter, delimiter + b"--")


class _Unsupported(Exception):
    """The pass leaves this message to the ordinary parser."""


def _headers(lines: list[bytes]) -> tuple[str, str, str]:
    """Content type, boundary (for a multipart) and transfer encoding of a header block."""
    parsed = BytesHeaderParser(policy=email.policy.default).parsebytes(b"".join(lines))
    content_type = parsed.get_content_type()
    boundary = ""
    if parsed.get_content_maintype() == "multipart":
        boundary = parsed.get_boundary() or ""
    encoding = str(parsed.get("Content-Transfer-Encoding", "")).strip().lower()
    return content_type, boundary, encoding


def _read_header_block(source: IO[bytes]) -> list[bytes]:
    lines = []
    for line in source:
        lines.append(line)
        if line in (b"\r\n", b"\n"):
            return lines
        if len(lines) > 1000:
            raise _Unsupported("a header block of over 1,000 lines")
    raise _Unsupported("the message ends inside a header block")


def _decoded(encoded_lines: Iterator[bytes]) -> Iterator[bytes]:
    pending = bytearray()
    for line in encoded_lines:
        pending += _WHITESPACE.sub(b"", line)
        if len(pending) >= _DECODE_CHUNK:
            usable = len(pending) - len(pending) % 4
            yield base64.b64decode(pending[:usable], validate=True)
            del pending[:usable]
    if pending:
        yield base64.b64decode(bytes(pending) + b"=" * (-len(pending) % 4), validate=True)


class _Pass:
    def __init__(self, source: IO[bytes], store: RawStore) -> None:
        self.source = source
        self.store = store
        self.out: list[bytes] = []
        self.stored: dict[str, StoredPart] = {}

    def run(self) -> Skeleton:
        header = _read_header_block(self.source)
        _, boundary, _ = _headers(header)
        if not boundary:
            raise _Unsupported("not a multipart message")
        self.out += header
        self._multipart(boundary.encode(), None)
        if not self.stored:
            raise _Unsupported("no large part")
        return Skeleton(b"".join(self.out), self.stored)

    def _multipart(self, boundary: bytes, parent: bytes | None) -> bytes | None:
        """Copy a multipart's preamble, parts and epilogue; returns the parent's next
        delimiter line that ends the epilogue (None at the end of the file)."""
        delimiter = b"--" + boundary
        line = self._copy_until(delimiter)
        while line is not None:
            self.out.append(line)
            if line.rstrip(b"\r\n").rstrip(b" \t") == delimiter + b"--":
                return self._copy_until(parent)
            line = self._part(delimiter)
        raise _Unsupported("a multipart without its closing delimiter")

    def _copy_until(self, delimiter: bytes | None) -> bytes | None:
        for line in self.source:
            if delimiter is not None and _is_delimiter(line, delimiter):
                return line
            self.out.append(line)
        return None

    def _part(self, delimiter: bytes) -> bytes | None:
        """Copy (or store) one part; returns the delimiter line after it."""
        header = _read_header_block(self.source)
        content_type, boundary, encoding = _headers(header)
        if boundary:
            self.out += header
            return self._multipart(boundary.encode(), delimiter)
        if encoding != "base64" or content_type.startswith(("message/", "text/")):
            self.out += header
            return self._copy_until(delimiter)
        body: list[bytes] = []
        size = 0
        for line in self.source:
            if _is_delimiter(line, delimiter):
                self.out += header
                self.out += body
                return line
            body.append(line)
            size += len(line)
            if size > LARGE_PART_BYTES:
                return self._stream(header, body, delimiter)
        raise _Unsupported("the message ends inside a part")

    def _stream(self, header: list[bytes], body: list[bytes], delimiter: bytes) -> bytes:
        ending: list[bytes] = []

        def encoded() -> Iterator[bytes]:
            yield from body
            body.clear()
            for line in self.source:
                if _is_delimiter(line, delimiter):
                    ending.append(line)
                    return
                yield line

        try:
            counted = _Counted(_decoded(encoded()))
            sha256 = self.store.put_chunks(counted)
        except (binascii.Error, ValueError) as exc:
            raise _Unsupported(f"a base64 part that does not decode: {exc}") from None
        if not ending:
            raise _Unsupported("the message ends inside a part")
        newline = b"\r\n" if header[-1] == b"\r\n" else b"\n"
        token = uuid.uuid4().hex
        self.stored[token] = StoredPart(sha256, counted.size)
        self.out += header[:-1]
        self.out.append(f"{STORED_PART}: {token}".encode() + newline)
        self.out.append(newline)
        return ending[0]


class _Counted:
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks = chunks
        self.size = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.size += len(chunk)
            yield chunk


def skeleton(path: Path, attachment_store: RawStore) -> Skeleton | None:
    """The message at `path` with its large base64 parts stored and emptied; None when
    it has none, or when the ordinary parser should read it whole."""
    with open(path, "rb") as source:
        try:
            return _Pass(source, attachment_store).run()
        except _Unsupported as why:
            log.info("%s is read whole: %s", path.name, why)
            return None
        except (TemporaryError, OSError):
            raise
        except Exception:  # the header parser on hostile input: the whole-message path
            log.exception("reading %s in parts failed; it is read whole", path.name)
            return None
