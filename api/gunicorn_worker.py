"""gunicorn's gthread worker, made safe against slow clients, with problem+json errors.

gunicorn 27's ThreadWorker gives a connection one of its threads as soon as the first byte
arrives; the thread then blocks reading the rest of the head, and the body, for as long as the
client takes: forty clients sending a byte every half second held every thread of the API.
This worker reads each request's head, and a body of known length up to MAX_BODY, in its event
loop (no thread), and hands the request to a thread only once it is all in memory.

The timeouts are totals, not per read, so that trickling bytes does not extend them:

- HEAD_TIMEOUT_S (5 s): from the accept, or from the first byte of a kept-alive connection's
  next request, to the end of the head. Past it the client gets a 408 and the connection
  closes (silently when it sent nothing at all).
- BODY_TIMEOUT_S (10 s): from the end of the head to the end of the body, whether the event
  loop buffers it or a thread reads it (a chunked body, `Expect: 100-continue`, one over
  MAX_BODY). A body over MAX_BODY is refused unread by the app (413): the connection then
  closes instead of being drained for keep-alive.
- LINGER_S (2 s): a connection closing after an answer sends its FIN at once, then what the
  client still sends is read and dropped for up to this long (so that the kernel does not
  answer it with an RST that could destroy the answer), in the event loop as well: gunicorn
  does that lingering on its event-loop thread, blocking it for up to 2 s per connection.

A head longer than HEAD_BUFFER goes to a thread as it is, for gunicorn's own limits to refuse
(414, 431); the thread reads anything missing under the head's deadline. Errors gunicorn
answers itself (400, 414, 431, ...) are problem documents here, not its HTML page.
"""
from __future__ import annotations

import contextlib
import errno
import selectors
import socket
import ssl
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from typing import Any

from gunicorn import http, util
from gunicorn.http import errors as http_errors
from gunicorn.http.unreader import SocketUnreader
from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

from api.limits import MAX_BODY
from api.wire_problems import problem_message

HEAD_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 10.0
LINGER_S = 2.0
LINGER_BYTES = 64 * 1024  # as gunicorn's own graceful close
HEAD_BUFFER = 64 * 1024
_RECV = 64 * 1024


class ReadDeadline(http_errors.NoMoreData):
    """A thread's read of a request passed the request's deadline: gunicorn drops the
    connection as it does for a client that went away."""

    def __str__(self) -> str:
        return "the request was not received in time"


class _DeadlineUnreader(SocketUnreader):
    """gunicorn's socket reader, each read bounded by the request's deadline."""

    def __init__(self, sock: socket.socket):
        super().__init__(sock)
        self.deadline = float("inf")

    def chunk(self, size_hint: int | None = None) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ReadDeadline()
        prior = self.sock.gettimeout()  # set by gunicorn when it drains a body: keep it
        self.sock.settimeout(remaining if prior is None else min(prior, remaining))
        try:
            return bytes(super().chunk(size_hint))
        except TimeoutError:
            if time.monotonic() < self.deadline:
                raise  # the caller's own, shorter timeout
            raise ReadDeadline() from None
        finally:
            self.sock.settimeout(prior)


class _Conn(TConn):
    """A connection whose graceful close lingers in the worker's event loop."""

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any,
                 linger: Any):
        super().__init__(cfg, sock, client, server)
        self._linger = linger

    def close(self, graceful: bool = False) -> None:
        if graceful and not isinstance(self.sock, ssl.SSLSocket):
            self._linger(self.sock)
        else:
            super().close(graceful)


@dataclass(eq=False)
class _Reading:
    """A request being read in the event loop."""

    conn: _Conn
    buf: bytearray
    deadline: float
    need: int | None = None  # head and body, once the head is in
    scanned: int = 0  # where to look for the head's end next: a trickled head is scanned once

    def complete(self) -> bool:
        """Whether the request can go to a thread: all in, or a head too large to wait for."""
        if self.need is None:
            end = _head_end(self.buf, self.scanned)
            if end is None:
                self.scanned = max(0, len(self.buf) - 3)
                return len(self.buf) > HEAD_BUFFER
            self.need = end + _body_to_buffer(bytes(self.buf[:end]))
            self.deadline = time.monotonic() + BODY_TIMEOUT_S
        return len(self.buf) >= self.need


@dataclass(eq=False)
class _Lingering:
    sock: socket.socket
    deadline: float
    drained: int = 0
    closed: bool = False


def _head_end(buf: bytearray, start: int) -> int | None:
    """Where the head ends (after its empty line), or None while it goes on. A bare-LF empty
    line counts too: the parser refuses it rather than anything waiting for more."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n")
            if (i := buf.find(sep, start)) >= 0]
    return min(ends) if ends else None


def _body_to_buffer(head: bytes) -> int:
    """How many body bytes to read before a thread gets the request: a Content-Length up to
    MAX_BODY; 0 when a thread reads it (chunked, Expect: 100-continue), or the app refuses it
    unread (too large), or the parser refuses the head (several lengths, not a number)."""
    lengths = []
    for line in head.splitlines()[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name in (b"transfer-encoding", b"expect"):
            return 0
        if name == b"content-length":
            lengths.append(value.strip())
    if len(lengths) != 1 or not lengths[0].isdigit() or int(lengths[0]) > MAX_BODY:
        return 0
    return int(lengths[0])


def _declared_length(req: Any) -> int:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH" and value.isdigit():
            return int(value)
    return 0


def status_of(exc: BaseException) -> int:
    """The status gunicorn answers a request it could not take with (as its handle_error)."""
    if isinstance(exc, (http_errors.InvalidResponseHeader,
                        http_errors.InvalidResponseHeaderName)):
        return 500  # the app's fault, not the client's
    for kind, status in ((http_errors.LimitRequestLine, 414),
                         (http_errors.LimitRequestHeaders, 431),
                         (http_errors.ExpectationFailed, 417),
                         (http_errors.UnsupportedTransferCoding, 501),
                         (http_errors.ForbiddenProxyRequest, 403),
                         (http_errors.ConfigurationProblem, 500),
                         (ssl.SSLError, 403)):
        if isinstance(exc, kind):
            return status
    return 400 if isinstance(exc, http_errors.ParseException) else 500


class BufferingThreadWorker(ThreadWorker):
    """gthread, except that requests are read in the event loop before a thread serves them."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._reading: dict[_Conn, _Reading] = {}
        self._lingering: deque[_Lingering] = deque()

    def accept(self, listener: socket.socket) -> None:
        """As gthread's, with connections that linger in the event loop when they close."""
        try:
            sock, addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self.enqueue_req(_Conn(self.cfg, sock, addr, listener.getsockname(), self._linger))

    def enqueue_req(self, conn: Any) -> None:
        """Where gthread gives a connection a thread (new, kept alive, or with a pipelined
        request buffered): its next request is read here first, then `_dispatch`ed."""
        if not self._reads_in_loop(conn):
            super().enqueue_req(conn)
            return
        buffered = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        reading = _Reading(conn, bytearray(buffered), time.monotonic() + HEAD_TIMEOUT_S)
        conn.sock.setblocking(False)
        self._reading[conn] = reading
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, reading))
        self._on_readable(reading)  # on loopback the request is often there already

    def _reads_in_loop(self, conn: Any) -> bool:
        # TLS, HTTP/2, uwsgi and PROXY framings keep gthread's own reading.
        cfg = self.cfg
        return (isinstance(conn, _Conn) and not conn.is_http2 and not cfg.is_ssl
                and getattr(cfg, "protocol", "http") == "http" and cfg.proxy_protocol == "off"
                and not negotiation.prior_knowledge_allowed(cfg, conn.client))

    def _on_readable(self, reading: _Reading, _fileobj: Any = None) -> None:
        try:
            data = reading.conn.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            data = None
        except OSError:
            data = b""
        if data:
            reading.buf += data
        if reading.complete():
            self._stop_reading(reading)
            self._dispatch(reading)
        elif data == b"":  # the client went away, or stopped short of a whole request
            self._stop_reading(reading)
            self.nr_conns -= 1
            util.close(reading.conn.sock)

    def _stop_reading(self, reading: _Reading) -> None:
        del self._reading[reading.conn]
        self.poller.unregister(reading.conn.sock)

    def _dispatch(self, reading: _Reading) -> None:
        conn = reading.conn
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
            conn.parser.unreader = _DeadlineUnreader(conn.sock)
        conn.parser.unreader.deadline = reading.deadline
        conn.parser.unreader.unread(bytes(reading.buf))
        conn.data_ready = True  # gthread must not wait for the socket: the bytes are in hand
        super().enqueue_req(conn)

    def murder_pending(self) -> None:
        """gthread's expiry of idle connections, plus the requests read too slowly and the
        lingering closes that are over (called about once a second by the event loop)."""
        super().murder_pending()
        now = time.monotonic()
        for reading in [r for r in self._reading.values() if r.deadline <= now]:
            self._stop_reading(reading)
            self.nr_conns -= 1
            if not reading.buf:  # it never said anything: nothing to answer
                util.close(reading.conn.sock)
                continue
            phase = "head" if reading.need is None else "body"
            limit = HEAD_TIMEOUT_S if reading.need is None else BODY_TIMEOUT_S
            with contextlib.suppress(OSError):  # best effort: the client may not read at all
                reading.conn.sock.send(problem_message(
                    408, f"the request's {phase} was not received within {limit:g} s"))
            self._linger(reading.conn.sock)
        while self._lingering and self._lingering[0].deadline <= now:
            self._stop_lingering(self._lingering.popleft())

    def _linger(self, sock: socket.socket) -> None:
        """Closes `sock` without an RST: FIN at once, then drops what the client still sends
        for up to LINGER_S or LINGER_BYTES, in the event loop."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            entry = _Lingering(sock, time.monotonic() + LINGER_S)
            self.poller.register(sock, selectors.EVENT_READ, partial(self._on_lingering, entry))
        except (OSError, ValueError, KeyError):
            util.close(sock)
            return
        self._lingering.append(entry)

    def _on_lingering(self, entry: _Lingering, _fileobj: Any = None) -> None:
        try:
            data = entry.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        entry.drained += len(data)
        if not data or entry.drained >= LINGER_BYTES:
            self._stop_lingering(entry)

    def _stop_lingering(self, entry: _Lingering) -> None:
        if entry.closed:
            return
        entry.closed = True
        with contextlib.suppress(KeyError, ValueError, OSError):
            self.poller.unregister(entry.sock)
        util.close(entry.sock)

    def handle_request(self, req: Any, conn: Any) -> bool:
        """As gthread's; a request whose body the app refuses unread (over MAX_BODY) closes
        its connection after the answer rather than having the body drained for keep-alive."""
        if _declared_length(req) > MAX_BODY:
            req.force_close()
        return bool(super().handle_request(req, conn))

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """A request gunicorn could not take (a bad or too large head, ...), or an error of
        the app's before it answered: a problem document instead of gunicorn's HTML page."""
        status = status_of(exc)
        if status < 500:
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
            detail = str(exc)
        else:
            self.log.exception("Error handling request")
            detail = "the server failed to handle this request"
        try:
            util.write_nonblock(client, problem_message(status, detail))
        except Exception:  # noqa: BLE001 - the client may be gone: nothing more to do
            self.log.debug("Failed to send error message.")
