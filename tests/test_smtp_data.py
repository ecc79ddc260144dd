"""The DATA phase as bytes on the wire: unstuffed, ended at the lone dot wherever the
pieces split it, refused as aiosmtpd refuses, and a DATA command known in a stream."""

from __future__ import annotations

import pytest

from maild.channels.smtp_data import MessageData, Refusal, is_data_command

# Lines that start with a dot, sent stuffed (RFC 5321 4.5.2); a lone "." in the message
# is sent as "..". A bare LF or CR ends no line: a dot after one is no line's first.
MESSAGE = (b"Subject: dots\r\n\r\n.hidden\r\n..\r\n.\r\n...three\r\nmid . dot\r\n"
           b"bare\nLF .\n..\r\ncr\r.\r\nend\r\n")
ON_THE_WIRE = (b"Subject: dots\r\n\r\n..hidden\r\n...\r\n..\r\n....three\r\nmid . dot\r\n"
               b"bare\nLF .\n..\r\ncr\r.\r\nend\r\n.\r\n")
AFTER = b"MAIL FROM:<next@customer.example>\r\n"


def receive(pieces: list[bytes], size_limit: int | None = None, line_limit: int = 1001
            ) -> tuple[bytes, bytes | None, MessageData]:
    written: list[bytes] = []
    data = MessageData(written.append, size_limit, line_limit)
    rest = None
    for piece in pieces:
        if rest is None:
            rest = data.feed(piece)
        else:  # after the end: what the session hands back as commands
            rest += piece
    return b"".join(written), rest, data


def test_the_message_is_unstuffed_and_ends_at_the_lone_dot() -> None:
    written, rest, data = receive([ON_THE_WIRE + AFTER])
    assert (written, rest, data.refusal) == (MESSAGE, AFTER, None)


def test_every_split_of_the_stream_reads_the_same() -> None:
    wire = ON_THE_WIRE + AFTER
    for split in range(1, len(wire)):
        assert receive([wire[:split], wire[split:]])[:2] == (MESSAGE, AFTER), split
    assert receive([bytes([b]) for b in ON_THE_WIRE])[:2] == (MESSAGE, b"")


def test_a_dot_line_is_the_end_only_after_a_crlf() -> None:
    written, rest, _ = receive([b".\r\n"])
    assert (written, rest) == (b"", b"")
    # A line beginning ".\r" then more is text; "\n.\r\n" without the CR is no end.
    assert receive([b"a\n.\r\n"])[1] is None
    assert receive([b"a\r\n.\rb\r\n", b".\r\n"])[:2] == (b"a\r\n\rb\r\n", b"")


def test_a_message_over_the_size_limit_is_refused_and_read_to_its_end() -> None:
    line = b"x" * 98 + b"\r\n"
    written, rest, data = receive([line * 10 + b"tail\r\n", b".\r\n" + AFTER], size_limit=1000)
    assert data.refusal is Refusal.TOO_MUCH
    assert rest == AFTER
    assert len(written) <= 1000  # nothing past the limit is written
    # Exactly at the limit, as aiosmtpd counts (the lines, without the final dot): taken.
    assert receive([line * 10 + b".\r\n"], size_limit=1000)[2].refusal is None


@pytest.mark.parametrize("pieces", [
    [b"ok\r\n" + b"y" * 1000 + b"\r\nok\r\n.\r\n"],
    [b"ok\r\n" + b"y" * 600, b"y" * 400 + b"\r\nok\r\n.\r\n"],
    [b"ok\r\n" + b"y" * 5000, b"y" * 5000, b"\r", b"\n.\r\n"],
])
def test_a_line_over_the_limit_is_refused_as_aiosmtpd_refuses_it(pieces: list[bytes]) -> None:
    written, rest, data = receive(pieces)
    assert (data.refusal, rest) == (Refusal.TOO_LONG, b"")
    assert b"y" not in written


def test_the_longest_line_allowed_is_taken() -> None:
    longest = b"z" * 999 + b"\r\n"  # 1001 bytes with its CRLF, aiosmtpd's limit
    for split in (1, 500, 999, 1000, 1001):
        written, rest, data = receive([longest[:split], longest[split:] + b".\r\n"])
        assert (written, rest, data.refusal) == (longest, b"", None), split


def test_a_data_command_is_known_as_aiosmtpd_reads_it() -> None:
    for line in (b"DATA\r\n", b"data\r\n", b"Data\n", b"DATA \r\n", b"DATA x\r\n"):
        assert is_data_command(line), line
    for line in (b"DATAX\r\n", b"MAIL FROM:<data@x>\r\n", b" DATA\r\n",
                 b"DATA " + b" " * 600 + b"\r\n"):
        assert not is_data_command(line), line


@pytest.mark.parametrize(("wire", "refusal"), [
    (b"x" * 3000 + b"\r\n" + (b"y" * 98 + b"\r\n") * 40 + b".\r\n", Refusal.TOO_LONG),
    ((b"y" * 98 + b"\r\n") * 41 + b"x" * 3000 + b"\r\n.\r\n", Refusal.TOO_MUCH),
])
def test_the_first_limit_passed_is_the_answer(wire: bytes, refusal: Refusal) -> None:
    assert receive([wire], size_limit=4000)[2].refusal is refusal
