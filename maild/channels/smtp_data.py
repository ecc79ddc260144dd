"""The SMTP DATA phase written to disk as it arrives, for the inbound listener.

aiosmtpd's own DATA keeps the whole message in memory until the final dot (a bytearray
per line, then one joined copy: about four times a message's size) and offers no way to
stream it. `SpoolingSMTP` is aiosmtpd's SMTP with a `smtp_DATA` of its own, as aiosmtpd's
documentation allows subclasses: the same checks and answers, then the bytes the
connection receives (`data_received`, the protocol's own entry point) go straight into
a spool file of the raw store, dot-unstuffed, until the line that is a lone dot. What
follows that line goes back to aiosmtpd as commands.

aiosmtpd does not advertise PIPELINING, but a client may still send the message before
the 354, or the next commands with it. Bytes after a DATA command line are therefore
held back from aiosmtpd until its DATA is answered: message text if the DATA is
accepted, commands again if it is refused. Nothing the client sends is lost or read
as the wrong thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from aiosmtpd.smtp import SMTP, Envelope, Session, syntax

from maild.db.rawstore import RawStore, SpoolFile
from maild.errors import TemporaryError

log = logging.getLogger(__name__)

# aiosmtpd's limit for a command line without its CRLF (RFC 5321 4.5.3.1.4).
COMMAND_BYTES = 512
# Held bytes (sent after DATA, before its answer) beyond which the connection is not
# read until the answer: the rest waits in the kernel, not in memory.
HOLD_BYTES = 64 * 1024


class Refusal(enum.Enum):
    TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"  # aiosmtpd's own answers
    TOO_MUCH = "552 Error: Too much mail data"


class MessageData:
    """The DATA of one message, fed as it arrives: dot-unstuffed (RFC 5321 4.5.2) into
    `write` until its end, the line that is a lone dot, wherever the pieces split it.

    The limits are aiosmtpd's: a line of more than `line_limit` bytes with its CRLF,
    or more than `size_limit` bytes in all (counted as sent, before unstuffing), is a
    refusal, answered once the end has come; what comes after one is not written."""

    def __init__(self, write: Callable[[bytes], object], size_limit: int | None,
                 line_limit: int) -> None:
        self.write = write
        self.size_limit = size_limit
        self.line_limit = line_limit
        self.refusal: Refusal | None = None
        self.received = 0
        self._line = b""  # the start of a line whose end has not come yet
        self._in_long_line = False  # discarding the rest of a line over the limit

    def feed(self, data: bytes) -> bytes | None:
        """Take the next bytes; returns None until the end has come, then what the
        client sent after it (b"" if nothing)."""
        data = self._line + data if self._line else data
        self._line = b""
        start = 0
        if self._in_long_line:
            line_end = data.find(b"\r\n")
            if line_end < 0:
                self._count(len(data) - 1)
                self._line = data[-1:]  # a CR whose LF may come next
                return None
            self._count(line_end + 2)
            start = line_end + 2
            self._in_long_line = False
        if data.startswith(b".\r\n", start):
            end = start
        else:
            marker = data.find(b"\r\n.\r\n", start)
            end = marker + 2 if marker >= 0 else -1
        if end >= 0:
            lines_end = end
        else:
            last_line_end = data.rfind(b"\r\n", start)
            lines_end = last_line_end + 2 if last_line_end >= 0 else start
        if lines_end > start:
            self._lines(data[start:lines_end])
        if end >= 0:
            return data[end + 3:]
        self._line = data[lines_end:]
        if len(self._line) > self.line_limit:  # too long whatever comes next
            self._refuse(Refusal.TOO_LONG)
            self._count(len(self._line) - 1)
            self._line = self._line[-1:]
            self._in_long_line = True
        return None

    def _lines(self, lines: bytes) -> None:
        """Whole lines, each with its CRLF."""
        if self.refusal is None:
            # Refused for whichever limit the lines pass first, as aiosmtpd reading
            # them one by one would.
            long_line_at = self._first_long_line(lines)
            over_at = (self.size_limit - self.received
                       if self.size_limit and self.received + len(lines) > self.size_limit
                       else -1)
            if long_line_at >= 0 and (over_at < 0 or long_line_at <= over_at):
                self._refuse(Refusal.TOO_LONG)
        self._count(len(lines))
        if self.refusal is not None:
            return
        if lines.startswith(b"."):
            lines = lines[1:]
        self.write(lines.replace(b"\r\n.", b"\r\n"))

    def _first_long_line(self, lines: bytes) -> int:
        """Where the first line over the limit starts in `lines`; -1 if none is."""
        longest = self.line_limit - 2  # without its CRLF
        if len(lines) <= longest:
            return -1
        each = lines.split(b"\r\n")
        if max(map(len, each)) <= longest:  # the common case, without a Python loop
            return -1
        start = 0
        for line in each:
            if len(line) > longest:
                return start
            start += len(line) + 2
        return -1

    def _count(self, sent: int) -> None:
        self.received += sent
        if self.size_limit and self.received > self.size_limit:
            self._refuse(Refusal.TOO_MUCH)

    def _refuse(self, why: Refusal) -> None:
        if self.refusal is None:  # the first reason is the answer, as in aiosmtpd
            self.refusal = why


def is_data_command(line: bytes) -> bool:
    """Whether aiosmtpd reads this command line (with its LF) as DATA: its command word,
    up to the first space, case-insensitive, and no longer than a command may be."""
    command = line.rstrip(b"\r\n")
    return len(command) <= COMMAND_BYTES and command.partition(b" ")[0].upper() == b"DATA"


class SpooledMessageHandler(Protocol):
    async def handle_spooled(self, server: SMTP, session: Session, envelope: Envelope,
                             spool: SpoolFile) -> str:
        """Take a message received whole into `spool`, which is the handler's from now
        on, to keep or discard, even if the session ends meanwhile; returns the answer."""


class SpoolingSMTP(SMTP):
    """aiosmtpd's SMTP with its DATA phase written to a spool file of `raw_store`, and
    handed to the handler's `handle_spooled` instead of `handle_DATA`."""

    def __init__(self, handler: SpooledMessageHandler, raw_store: RawStore, *,
                 idle_timeout: float | None = None, **settings: Any) -> None:
        """`idle_timeout`: how long the client may send nothing while this side waits
        on it, a message's data included (aiosmtpd's own `timeout` runs from one command
        to the next, and so ends a large message that comes slowly but steadily)."""
        super().__init__(handler, **settings)
        self.spooled_handler = handler
        self.raw_store = raw_store
        self.idle_timeout = idle_timeout
        self.__heard_at = 0.0  # the loop's time of the client's last byte (see `__heard`)
        self.__silence: asyncio.TimerHandle | None = None  # see `__watch_silence`
        self.__client_waiting = 0  # see `client_waits`
        # Mangled names, here and for the methods: this DATA phase's state never meets
        # an attribute of aiosmtpd's or asyncio's classes (asyncio's flow control has
        # a `_paused` of its own).
        self.__command_start = b""  # the start of a command line whose LF has not come
        self.__held: list[bytes] | None = None  # bytes after DATA, before its answer
        self.__held_bytes = 0
        self.__reading_paused = False
        self.__message: MessageData | None = None  # while DATA is received
        self.__message_ended: asyncio.Future[bytes] | None = None

    def trace_headers(self, envelope: Envelope) -> bytes:
        """Header lines written above the message in its spool file."""
        return b""

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self.__heard()
        self.__watch_silence(self.idle_timeout)

    def __heard(self) -> None:
        """The client sent something, or is waited on no longer: its silence counts
        from now. Noted only: a message comes in many pieces, and one timer looks."""
        self.__heard_at = self.loop.time()

    def __watch_silence(self, delay: float | None) -> None:
        if delay is not None:
            self.__silence = self.loop.call_later(delay, self.__look_at_silence)

    def __look_at_silence(self) -> None:
        assert self.idle_timeout is not None
        if self.__client_waiting:  # on this side: its silence does not count
            self.__heard()
        left = self.__heard_at + self.idle_timeout - self.loop.time()
        if left > 0:
            self.__watch_silence(left)
            return
        peer = self.session.peer if self.session is not None else "a client"
        log.info("inbound SMTP: %s sent nothing for %g s; disconnected", peer,
                 self.idle_timeout)
        if self.transport is not None:
            self.transport.close()

    @contextlib.contextmanager
    def client_waits(self) -> Iterator[None]:
        """The client waits on this side meanwhile (for its turn to send a large message,
        for its message to be stored): its silence does not count."""
        self.__client_waiting += 1
        try:
            yield
        finally:
            self.__client_waiting -= 1
            self.__heard()

    def data_received(self, data: bytes) -> None:
        self.__heard()
        if self.__message is not None:
            rest = self.__message.feed(data)
            if rest is None:
                return
            self.__end_of_message(rest)
            return
        if self.__held is not None:
            self.__hold(data)
            return
        through_data = self.__through_data_command(data)
        if through_data < 0:
            super().data_received(data)
            return
        super().data_received(data[:through_data])
        self.__held, self.__held_bytes = [], 0
        if through_data < len(data):
            self.__hold(data[through_data:])

    def __through_data_command(self, data: bytes) -> int:
        """Where the first DATA command line in `data` ends (after its LF); -1 if none."""
        start = 0
        while (line_end := data.find(b"\n", start)) >= 0:
            line = self.__command_start + data[start:min(line_end + 1, start + COMMAND_BYTES + 3)]
            self.__command_start = b""
            if is_data_command(line):
                return line_end + 1
            start = line_end + 1
        # Only its start matters: a line longer than a command is no DATA.
        self.__command_start = (self.__command_start + data[start:])[:COMMAND_BYTES + 3]
        return -1

    def __hold(self, data: bytes) -> None:
        assert self.__held is not None
        self.__held.append(data)
        self.__held_bytes += len(data)
        if (self.__held_bytes > HOLD_BYTES and not self.__reading_paused
                and isinstance(self.transport, asyncio.ReadTransport)):
            self.__reading_paused = True
            self.transport.pause_reading()

    def __release_held(self) -> bytes:
        """End holding; returns what was held."""
        held = b"".join(self.__held or ())
        self.__held, self.__held_bytes = None, 0
        if self.__reading_paused:
            self.__reading_paused = False
            if isinstance(self.transport, asyncio.ReadTransport):
                self.transport.resume_reading()
        return held

    def __resume_commands(self) -> None:
        """The DATA was refused: what was held is commands again."""
        commands = self.__release_held()
        if commands:
            self.data_received(commands)

    def __end_of_message(self, rest: bytes) -> None:
        self.__message = None
        if self.__message_ended is not None and not self.__message_ended.done():
            self.__message_ended.set_result(rest)
        if rest:  # the next commands, sent along with the end
            self.data_received(rest)

    @syntax("DATA")  # as aiosmtpd's own: HELP lists the command
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, its checks and answers in its order, with the message
        written to a spool file as it comes."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            self.__resume_commands()  # answered by the check
            return
        assert self.envelope is not None
        refusal = None
        if not self.envelope.rcpt_tos:
            refusal = "503 Error: need RCPT command"
        elif arg:
            refusal = "501 Syntax: DATA"
        else:
            try:
                spool = self.raw_store.spool()
            except TemporaryError as exc:
                log.warning("inbound SMTP: deferring a message: %s", exc)
                refusal = "451 4.3.0 Temporary failure, please try again later"
        if refusal is not None:
            await self.push(refusal)
            self.__resume_commands()
            return
        await self.__receive(spool)

    async def __receive(self, spool: SpoolFile) -> None:
        assert self.envelope is not None and self.session is not None
        write_failure: list[TemporaryError] = []

        def write(data: bytes) -> None:
            if not write_failure:
                try:
                    spool.write(data)
                except TemporaryError as exc:  # the rest is read and dropped
                    write_failure.append(exc)

        message = MessageData(write, self.data_size_limit, self.line_length_limit)
        try:
            write(self.trace_headers(self.envelope))
            self.__message_ended = self.loop.create_future()
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            # Sent before the 354 (the client did not wait): the start of the message.
            early = self.__release_held()
            self.__message = message
            if early:
                self.data_received(early)
            await self.__message_ended
        except BaseException:  # the connection ended: nothing of the message is kept
            spool.discard()
            raise
        finally:
            self.__message = None
            self.__message_ended = None
        envelope, self.envelope = self.envelope, self._create_envelope()
        if message.refusal is not None or write_failure:
            spool.discard()
            if write_failure:
                log.warning("inbound SMTP: deferring a message: %s", write_failure[0])
            await self.push(message.refusal.value if message.refusal is not None
                            else "451 4.3.0 Temporary failure, please try again later")
            return
        # The handler owns the spool from here, even if this session ends meanwhile.
        with self.client_waits():
            answer = await self.spooled_handler.handle_spooled(self, self.session, envelope,
                                                               spool)
        await self.push(answer)

    def connection_lost(self, error: Exception | None) -> None:
        self.__message = None  # the DATA being received ends with the connection
        self.__held = None
        if self.__silence is not None:
            self.__silence.cancel()
        super().connection_lost(error)
