"""Mail that arrives whole (the SMTP listener, `maild ingest`) handed to the intake the
way the IMAP reader hands over large mail: a large message is written to the raw store
as it comes, and read from there with its large attachments streamed
(maild/intake/large.py), so that it is never parsed whole in memory."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import IO

from maild.intake.pipeline import IngestResult, Intake, ingest, intake_batch

# A message larger than this is spooled and read from disk; smaller ones are parsed as
# they are, which is cheaper and costs no more than a few times this in memory.
SPOOL_BYTES = 1024 * 1024
READ_CHUNK_BYTES = 1024 * 1024


def ingest_spooled(intake: Intake, chunks: Iterable[bytes], channel: str) -> IngestResult:
    """Take a message given piece by piece: stored as it comes, then read from disk.
    Raises TemporaryError only when nothing could be kept."""
    raw_sha256 = intake.raw_store.put_chunks(chunks)
    with intake_batch(intake, channel) as batch:
        batch.ingest_stored(raw_sha256)
    return batch.results[0]


def ingest_stream(intake: Intake, source: IO[bytes], channel: str) -> IngestResult:
    """Take a message read from a file or a pipe: a small one as it is, a large one
    spooled (`ingest_spooled`), so that memory does not grow with the message."""
    head = source.read(SPOOL_BYTES + 1)
    if len(head) <= SPOOL_BYTES:
        return ingest(intake, head, channel)

    def chunks() -> Iterator[bytes]:
        yield head
        while chunk := source.read(READ_CHUNK_BYTES):
            yield chunk

    return ingest_spooled(intake, chunks(), channel)
