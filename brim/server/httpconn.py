"""One HTTP/1.1 client connection of a WSGI worker (RFC 9112, PEP 3333).

A :class:`Connection` runs in its own green thread: it reads request heads,
checks them with :mod:`brim.server.http1`, builds the PEP 3333 environ,
hands the request to the subserver (its pipeline), and writes the response
with the framing RFC 9112 §6 asks for. It replaces Eventlet's
``eventlet.wsgi`` request handling, so that every byte a client sends passes
brim's own checks before an app sees it, and every wait has a bound:

- ``client_timeout`` bounds waiting for a request to start (idle
  keep-alive), reading the whole head once its first byte came (not each
  read: a client trickling one byte a second is cut off on time, with 408),
  each read of the body an app asks for, and each write;
- a head over a limit gets 414 or 431, a malformed one 400, a body
  over ``max_body_size`` 413, and the connection closes after each of them
  (with a lingering close, so the client reads the answer before the close);
- a body the app left unread is read and thrown away (up to
  :data:`DRAIN_LIMIT` bytes) before the next request, or the connection
  closes: a half-read body is never taken for the next request.

Invariants: one :class:`Connection` per socket, used by one green thread;
``buf`` holds bytes received and not yet consumed (the rest of a body, or
the next pipelined request); a response is framed by Content-Length,
chunked coding (HTTP/1.1) or the close of the connection, never ambiguous.
"""

from __future__ import annotations

import socket
import sys
import time
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Iterator, Optional
from urllib.parse import unquote_to_bytes

from brim.http import HTTPBadRequest, HTTPContentTooLarge, HTTPException, HTTPRequestTimeout, reason_phrase
from brim.log import sysloggable_excinfo
from brim.stats import MASK
from brim.server.subserver import tls_handshake
from brim.server.http1 import (Head, HeadError, Limits, chunk_size, head_size_error, is_token, parse_field,
                               parse_head, skip_empty_lines)

if TYPE_CHECKING:
    from brim.server.wsgi import WSGIRunner

#: Bytes of an unread request body read and thrown away so the connection
#: can stay open for the next request; a longer rest closes it instead.
DRAIN_LIMIT = 65536
#: Longest chunk-size line (with extensions) accepted in a chunked body.
MAX_CHUNK_LINE = 4096
#: Seconds a closing connection keeps reading (and dropping) what the
#: client still sends, so that the kernel does not reset the connection
#: and destroy the response before the client reads it (a lingering close).
LINGER = 2.0
RECV_SIZE = 65536
#: A connection whose requests keep coming without a wait (pipelined, or
#: a client faster than the loop) yields to the other connections after
#: this many requests; one whose next request is already buffered, at once.
YIELD_EVERY = 16

IDLE, BUSY = 0, 1
_NO_BODY_CODES = frozenset((204, 304))
_HOP_BY_HOP = frozenset(('connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade',
                         'proxy-connection'))
_date: list = [0, b'']


class ClientDisconnected(ConnectionError):
    """Raised by ``wsgi.input`` when the client closes the connection (or
    resets it) before its request body is complete."""


def http_date() -> bytes:
    """The ``Date`` header value for now (RFC 9110 §6.6.1), cached per second."""
    now = int(time.time())
    if _date[0] != now:
        _date[0] = now
        _date[1] = formatdate(now, usegmt=True).encode('ascii')
    return _date[1]


class RequestBody:
    """``wsgi.input`` (PEP 3333): the request body, read from the connection.

    ``read``, ``readline``, ``readlines`` and iteration (``chunk`` bytes at a
    time) return bytes of the body only, and ``b''`` at its end. Each call
    waits at most ``client_timeout`` seconds for the client.

    Attributes:
        position: Body bytes returned so far.

    Raises (from every read):
        HTTPRequestTimeout: the client took longer than ``client_timeout``.
        HTTPBadRequest: a malformed chunked body (RFC 9112 §7.1).
        HTTPContentTooLarge: a chunked body longer than ``max_body_size``.
        ClientDisconnected: the client went away.
        Each is a WSGI app (:mod:`brim.http`) and, left uncaught, is
        answered as the response; the connection then closes.
    """

    __slots__ = ('conn', 'remaining', 'chunked', 'chunk_left', 'done', 'position', 'received', 'limit', 'chunk',
                 'pending', 'error', 'continue_wanted')

    def __init__(self, conn: 'Connection', head: Head, limit: int, chunk: int) -> None:
        self.conn = conn
        self.chunked = head.chunked
        self.remaining = head.content_length or 0
        self.chunk_left = 0
        self.done = not head.chunked and not self.remaining
        self.position = 0
        self.received = 0  # chunk-data bytes announced so far
        self.limit = limit
        self.chunk = chunk
        self.pending = b''
        self.error: Optional[BaseException] = None
        self.continue_wanted = head.expect_continue and not self.done

    # -- the file-like interface ---------------------------------------------

    def read(self, size: Optional[int] = -1) -> bytes:
        """Read ``size`` bytes (fewer only at the end), or all if ``size`` < 0."""
        return self._read(size, False)

    def readline(self, size: Optional[int] = -1) -> bytes:
        """Read up to and including the next LF (at most ``size`` bytes)."""
        return self._read(size, True)

    def _read(self, size: Optional[int], line: bool) -> bytes:
        want = -1 if size is None or size < 0 else size
        parts = []
        deadline = self.conn.deadline()
        while want:
            data = self._take(want, deadline)
            if not data:
                break
            if line:
                end = data.find(b'\n')
                if end >= 0:
                    self.pending = data[end + 1:] + self.pending
                    parts.append(data[:end + 1])
                    break
            parts.append(data)
            if want > 0:
                want -= len(data)
        data = parts[0] if len(parts) == 1 else b''.join(parts)
        self.position += len(data)
        return data

    def readlines(self, hint: Optional[int] = -1) -> list[bytes]:
        """Read lines until the end (or until ``hint`` bytes have been read)."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            data = self.read(self.chunk)
            if not data:
                return
            yield data

    # -- framing -------------------------------------------------------------

    def _take(self, want: int, deadline: Optional[float]) -> bytes:
        """Return the next body bytes (at most ``want`` if > 0), b'' at the end."""
        if self.pending:
            data = self.pending if want < 0 else self.pending[:want]
            self.pending = self.pending[len(data):]
            return data
        if self.done:
            return b''
        try:
            if self.continue_wanted:
                self.continue_wanted = False
                self.conn.send_continue()
            if self.chunked:
                return self._take_chunked(want, deadline)
            data = self.conn.take(self.remaining if want < 0 else min(want, self.remaining), deadline)
            self.remaining -= len(data)
            self.done = not self.remaining
            return data
        except HTTPException as err:
            raise self._fail(err) from None
        except (socket.timeout, TimeoutError) as err:
            raise self._fail(HTTPRequestTimeout('408 Request Timeout: the request body did not come '
                                                'within client_timeout\n')) from err
        except OSError as err:
            raise self._fail(ClientDisconnected('client went away while sending the request body: %s'
                                                % err)) from err

    def _fail(self, err: BaseException) -> BaseException:
        self.error = err
        self.done = True
        self.conn.must_close = True
        return err

    def _take_chunked(self, want: int, deadline: Optional[float]) -> bytes:
        conn = self.conn
        if not self.chunk_left:
            line = conn.take_line(MAX_CHUNK_LINE, deadline)
            try:
                size = chunk_size(line)
            except HeadError as err:
                raise HTTPBadRequest('400 Bad Request: %s\n' % err.reason) from None
            if not size:
                self._trailers(deadline)
                self.done = True
                return b''
            self.received += size
            if self.limit and self.received > self.limit:
                raise HTTPContentTooLarge('413 Content Too Large: the body is longer than %d bytes\n'
                                          % self.limit)
            self.chunk_left = size
        data = conn.take(self.chunk_left if want < 0 else min(want, self.chunk_left), deadline)
        self.chunk_left -= len(data)
        if not self.chunk_left and conn.take_line(0, deadline):
            # RFC 9112 §7.1: chunk-data is followed by CRLF.
            raise HTTPBadRequest('400 Bad Request: chunk data not followed by CRLF\n')
        return data

    def _trailers(self, deadline: Optional[float]) -> None:
        """Read (and drop) the trailer section (RFC 9112 §7.1.2), within the head limits."""
        limits = self.conn.limits
        size = count = 0
        while True:
            line = self.conn.take_line(limits.max_header_line, deadline)
            if not line:
                return
            size += len(line) + 2
            count += 1
            if count > limits.max_headers or size > limits.max_header_size:
                raise HTTPBadRequest('400 Bad Request: trailer section too large\n')
            try:
                parse_field(line)
            except HeadError as err:
                raise HTTPBadRequest('400 Bad Request: trailer: %s\n' % err.reason) from None

    def drain(self, limit: int) -> bool:
        """Read and drop what is left of the body, up to ``limit`` bytes.

        Returns:
            True if the body ended (the connection may carry another request).
        """
        if self.done and not self.pending:
            return self.error is None
        if not self.chunked and self.remaining + len(self.pending) > limit:
            return False
        total = 0
        try:
            while True:
                data = self.read(min(RECV_SIZE, limit - total + 1))
                if not data:
                    return self.error is None
                total += len(data)
                if total > limit:
                    return False
        except Exception:
            return False


class Connection:
    """One client connection: requests in, responses out (see the module docstring).

    Args:
        runner: The worker's :class:`~brim.server.wsgi.WSGIRunner`.
        sock: The accepted (green, maybe TLS) socket.
        address: The client's address from ``accept()``.
    """

    __slots__ = ('runner', 'sub', 'sock', 'address', 'buf', 'timeout', 'limits', 'state', 'idle_since',
                 'must_close', 'head', 'status', 'out_headers', 'headers_sent', 'out_chunked',
                 'out_length', 'out_discard', 'written', 'base_env', 'keep_alive', 'body', 'out_buf', 'out_min',
                 'cells', 'in_cell', 'out_cell')

    def __init__(self, runner: 'WSGIRunner', sock: Any, address: Any) -> None:
        self.runner = runner
        self.sub = runner.sub
        self.sock = sock
        self.address = address
        self.buf = b''
        self.timeout: Optional[float] = runner.timeout
        self.limits: Limits = runner.limits
        self.state = IDLE
        self.idle_since = time.monotonic()
        self.must_close = False
        self.base_env = runner.connection_environ(sock, address)
        self.out_min = runner.out_min
        self.head: Optional[Head] = None
        self.body: Optional[RequestBody] = None
        # The response being sent (reset by respond()).
        self.status: Optional[str] = None
        self.out_headers: list = []
        self.headers_sent = False
        self.out_chunked = False
        self.out_length: Optional[int] = None
        self.out_discard = False
        self.written = 0
        self.out_buf: list[bytes] = []
        self.keep_alive = True
        # The worker's bytes_in and bytes_out cells (WSGIRunner.byte_cells),
        # added to per receive and send: exact, and one add each.
        counts: tuple[Any, int, int] = getattr(runner, 'byte_cells', None) or (None, 0, 0)
        self.cells, self.in_cell, self.out_cell = counts

    # -- reading ---------------------------------------------------------------

    def deadline(self) -> Optional[float]:
        """``client_timeout`` seconds from now (monotonic), or None for no limit."""
        return None if self.timeout is None else time.monotonic() + self.timeout

    def recv(self, deadline: Optional[float]) -> bytes:
        """Receive what has come (b'' at the end), waiting until ``deadline``;
        counted in the worker's ``bytes_in``.

        Raises:
            socket.timeout: the deadline passed.
            OSError: the connection failed.
        """
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout('timed out')
            self.sock.settimeout(left)
        data = self.sock.recv(RECV_SIZE)
        cells = self.cells
        if cells is not None:
            cells[self.in_cell] = (cells[self.in_cell] + len(data)) & MASK
        return data

    def take(self, size: int, deadline: Optional[float]) -> bytes:
        """Take up to ``size`` (> 0) bytes, receiving if none are buffered.

        Raises:
            ClientDisconnected: the client closed before sending any.
        """
        if not self.buf:
            data = self.recv(deadline)
            if not data:
                raise ClientDisconnected('connection closed')
            self.buf = data
        data = self.buf[:size]
        self.buf = self.buf[size:]
        return data

    def take_line(self, limit: int, deadline: Optional[float]) -> bytes:
        """Take one CRLF-ended line (returned without the CRLF).

        Raises:
            HTTPBadRequest: the line is longer than ``limit`` bytes, or has
                no CRLF at its end.
            ClientDisconnected: the client closed first.
        """
        while True:
            end = self.buf.find(b'\r\n')
            if 0 <= end <= limit:
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if b'\r' in line or b'\n' in line:
                    raise HTTPBadRequest('400 Bad Request: line ending other than CRLF in the body\n')
                return line
            if end > limit or len(self.buf) > limit + 1:
                raise HTTPBadRequest('400 Bad Request: line too long, or not ended by CRLF, in the body\n')
            data = self.recv(deadline)
            if not data:
                raise ClientDisconnected('connection closed')
            self.buf += data

    def read_head(self) -> Optional[Head]:
        """Wait for the next request and read its head.

        Returns:
            The :class:`Head`, or None when the connection should close: the
            client closed or stayed idle for ``client_timeout``, or the head
            was refused (answered here with its 4xx).
        """
        self.state = IDLE
        self.idle_since = time.monotonic()
        deadline = self.deadline()
        started = False
        limits = self.limits
        while True:
            # RFC 9112 §2.2: empty lines before a request line are ignored.
            buf = self.buf[skip_empty_lines(self.buf):]
            end = buf.find(b'\r\n\r\n')
            if end >= 0:
                self.buf = buf[end + 4:]
                self.state = BUSY
                try:
                    return parse_head(buf[:end + 4], limits)
                except HeadError as err:
                    self.refuse(err.status, err.reason)
                    return None
            self.buf = buf
            if buf:
                if not started:
                    started = True
                    self.state = BUSY
                    deadline = self.deadline()  # the whole head within client_timeout
                error = head_size_error(buf, limits)
                if error is None and buf.count(b'\n') != buf.count(b'\r\n'):
                    error = HeadError(400, 'line ending other than CRLF')
                if error is not None:
                    self.refuse(error.status, error.reason)
                    return None
            try:
                data = self.recv(deadline)
            except (socket.timeout, TimeoutError):
                if started:
                    self.refuse(408, 'the request head did not come within client_timeout')
                return None
            except OSError:
                return None
            if not data:
                return None
            self.buf += data

    def refuse(self, status: int, reason: str) -> None:
        """Answer ``status`` for a request no app saw, count it, and mark the connection to close."""
        self.must_close = True
        self.sub.count_rejected(status)
        self.sub.logger.info('refused a request from %s: %d %s', self.base_env['REMOTE_ADDR'], status, reason)
        body = ('%d %s: %s\n' % (status, reason_phrase(status), reason)).encode('latin-1')
        try:
            self.send(b'HTTP/1.1 %d %s\r\nDate: %s\r\nConnection: close\r\n'
                      b'Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s'
                      % (status, reason_phrase(status).encode('latin-1'), http_date(), len(body), body))
        except OSError:
            pass

    # -- writing ---------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send all of ``data`` within ``client_timeout`` seconds; what is
        sent is counted in the worker's ``bytes_out``.

        Raises:
            socket.timeout: the client did not accept it in time.
            OSError: the connection failed.
        """
        deadline = self.deadline()
        view = memoryview(data)
        while view:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout('timed out')
                self.sock.settimeout(left)
            sent = self.sock.send(view)
            view = view[sent:]
            cells = self.cells
            if cells is not None:
                cells[self.out_cell] = (cells[self.out_cell] + sent) & MASK

    def send_continue(self) -> None:
        """Send ``100 Continue`` (RFC 9110 §15.2.1) unless the response has begun."""
        if not self.headers_sent:
            self.send(b'HTTP/1.1 100 Continue\r\n\r\n')

    def start_response(self, status: str, headers: list, exc_info: Any = None) -> Any:
        """PEP 3333 ``start_response``.

        Returns:
            The PEP 3333 ``write(data)`` callable.

        Raises:
            BaseException: ``exc_info``'s own exception, re-raised, if the
                headers have been sent.
            AssertionError: called twice without ``exc_info``.
            ValueError: a status that is not ``'NNN reason'`` or a header
                that is not a (str, str) pair without CR, LF or NUL.
        """
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError('start_response called a second time without exc_info')
        lengths = 0
        if not (isinstance(status, str) and len(status) >= 4 and status[:3].isdigit() and status[3] == ' '
                and 100 <= int(status[:3]) <= 599):
            raise ValueError('status %r is not "NNN reason" (PEP 3333)' % (status,))
        if not status.isascii():
            try:
                status.encode('latin-1')
            except UnicodeError:
                raise ValueError('status %r is not latin-1 text (PEP 3333)' % (status,)) from None
        for pair in headers:
            if not (type(pair) is tuple and len(pair) == 2 and isinstance(pair[0], str)
                    and isinstance(pair[1], str)):
                raise ValueError('header %r is not a (str, str) tuple (PEP 3333)' % (pair,))
            name, value = pair
            if '\r' in value or '\n' in value or '\0' in value or not is_token(name):
                raise ValueError('header %r: the name is not a token, or the value has CR, LF or NUL '
                                 '(RFC 9110 §5.1, §5.5)' % (pair,))
            if not value.isascii():
                try:
                    value.encode('latin-1')
                except UnicodeError:
                    raise ValueError('header %r: the value is not latin-1 text (PEP 3333)' % (pair,)) from None
            if name.lower() == 'content-length':
                lengths += 1
                if lengths > 1 or not (value.strip().isascii() and value.strip().isdigit()):
                    raise ValueError('header %r: Content-Length is not one number of bytes' % (pair,))
        self.status = status
        self.out_headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        """The PEP 3333 ``write`` callable: send ``data`` now."""
        if self.status is None:
            raise AssertionError('write() before start_response()')
        self.out_buf.append(data)
        self.flush()

    def head_bytes(self, length: Optional[int]) -> bytes:
        """The response's status line and header section, framing decided here.

        Args:
            length: The whole body's length when known before it is sent.
        """
        head = self.head
        assert head is not None and self.status is not None
        code = int(self.status[:3])
        lines = [b'HTTP/1.1 ' + self.status.encode('latin-1')]
        declared = None
        dated = False
        for name, value in self.out_headers:
            lowered = name.lower()
            if lowered in _HOP_BY_HOP:
                # PEP 3333: hop-by-hop fields are the server's; an app's
                # "Connection: close" is honoured, the rest dropped.
                if lowered == 'connection' and 'close' in value.lower():
                    self.keep_alive = False
                continue
            if lowered == 'content-length':
                if code < 200 or code == 204:
                    continue  # RFC 9110 §8.6: never in 1xx or 204
                declared = int(value)
            elif lowered == 'date':
                dated = True
            lines.append(('%s: %s' % (name, value)).encode('latin-1'))
        if not dated:
            lines.append(b'Date: ' + http_date())
        no_body = head.method == 'HEAD' or code < 200 or code in _NO_BODY_CODES
        if no_body:
            self.out_discard = True  # RFC 9110 §6.4.1: no content, whatever the app sent
        elif declared is not None:
            self.out_length = declared
        elif length is not None:
            lines.append(b'Content-Length: %d' % length)
        elif head.version == 'HTTP/1.1':
            lines.append(b'Transfer-Encoding: chunked')
            self.out_chunked = True
        else:
            self.keep_alive = False  # the body ends where the connection does
        body = self.body
        if body is not None and not body.done and (body.continue_wanted or (
                not body.chunked and body.remaining + len(body.pending) > DRAIN_LIMIT)):
            # Too much body left unread to drop (or a client still waiting
            # for 100 Continue): say that the connection will close
            # (RFC 9110 §10.1.1).
            self.keep_alive = False
        if not self.keep_alive or self.must_close:
            self.keep_alive = False
            lines.append(b'Connection: close')
        elif head.version == 'HTTP/1.0':
            lines.append(b'Connection: keep-alive')
        lines.append(b'\r\n')
        self.headers_sent = True
        return b'\r\n'.join(lines)

    def flush(self, length: Optional[int] = None) -> None:
        """Send the buffered body bytes (with the head first, if not sent)."""
        data = b''.join(self.out_buf)
        self.out_buf = []
        head = b'' if self.headers_sent else self.head_bytes(length)
        if self.out_discard:
            data = b''
        elif self.out_length is not None:
            room = self.out_length - self.written
            if len(data) > room:
                data = data[:max(room, 0)]  # never past the declared length
                self.keep_alive = False
        self.written += len(data)
        if self.out_chunked and data:
            data = b'%x\r\n%s\r\n' % (len(data), data)
        self.send(head + data if head else data)

    # -- one exchange ----------------------------------------------------------

    def run(self) -> None:
        """Serve requests until the connection closes."""
        runner = self.runner
        try:
            if runner.tls and not tls_handshake(runner.eventlet, self.sock, self.timeout, self.sub.logger,
                                                self.address):
                return
            served = 0
            while True:
                head = self.read_head()
                if head is None or not self.respond(head):
                    break
                if runner.draining:
                    self.idle_since = time.monotonic()
                served += 1
                if self.buf or not served % YIELD_EVERY:
                    # A client whose next request is already here would
                    # otherwise be served on without a wait; let the others
                    # have their turn first.
                    runner.yield_now()
        except Exception:
            self.sub.logger.error('connection from %s failed: %s', self.base_env.get('REMOTE_ADDR'),
                                  sysloggable_excinfo(*sys.exc_info()))
        finally:
            self.close()

    def respond(self, head: Head) -> bool:
        """Run one request through the subserver and send its response.

        Returns:
            True if the connection may carry another request.
        """
        runner = self.runner
        self.head = head
        self.status = None
        self.out_headers = []
        self.headers_sent = False
        self.out_chunked = False
        self.out_length = None
        self.out_discard = False
        self.written = 0
        self.out_buf = []
        self.keep_alive = head.keep_alive and not runner.draining
        limit = runner.max_body_size
        if limit and head.content_length is not None and head.content_length > limit:
            self.refuse(413, 'the body is longer than %d bytes' % limit)
            return False
        body = self.body = RequestBody(self, head, limit, runner.in_chunk)
        env = self.environ(head, body)
        try:
            result = self.sub(env, self.start_response)
        except Exception:
            # brim.server.wsgi answers an app's exceptions with 500 itself;
            # what gets here is a start_response that re-raised exc_info
            # after the headers went out, or a failure of the subserver.
            self.sub.logger.error('%s: the app raised: %s', env.get('PATH_INFO'),
                                  sysloggable_excinfo(*sys.exc_info()))
            try:
                self.app_failed(None, logged=True)
            except OSError:
                pass
            return False
        try:
            if isinstance(body.error, ClientDisconnected) and self.status is None:
                return False  # nobody to answer
            self.send_body(result)
        except OSError:  # the client is gone or too slow; start_response checked the rest
            self.keep_alive = False
        finally:
            close = getattr(result, 'close', None)
            if close is not None:
                close()
        if self.keep_alive and not self.must_close:
            if not (head.expect_continue and body.continue_wanted) and body.drain(DRAIN_LIMIT):
                return True
            # Unread body left (or a client still deciding whether to send
            # it after Expect: 100-continue): it must not be read as a request.
        if body.error is not None or not body.done:
            self.must_close = True
        return False

    def send_body(self, result: Any) -> None:
        """Send the response ``result`` (an iterable of bytes), framed.

        Raises:
            OSError: sending failed (the client is gone or too slow).
        """
        inner = getattr(result, 'body', result)
        if type(inner) is list and self.status is not None and not self.headers_sent and not self.out_buf \
                and all(type(chunk) is bytes for chunk in inner):
            # The common case: the whole body is known, send it in one write.
            for chunk in result:
                self.out_buf.append(chunk)
            self.flush(sum(map(len, self.out_buf)))
            self.finish()
            return
        size = 0
        chunks = iter(result)
        while True:
            try:
                chunk = next(chunks)
                if not chunk:
                    continue
                if self.status is None:
                    raise AssertionError('the app returned a body before calling start_response()')
                if type(chunk) is not bytes:
                    raise TypeError('the app returned %s in its body, not bytes (PEP 3333)' % type(chunk).__name__)
            except StopIteration:
                break
            except Exception:
                self.app_failed(result)
                return
            self.out_buf.append(chunk)
            size += len(chunk)
            if size >= self.out_min:
                self.flush()
                size = 0
        if self.status is None:
            try:
                raise AssertionError('the app returned without calling start_response()')
            except AssertionError:
                self.app_failed(result)
                return
        self.flush(sum(map(len, self.out_buf)) if not self.headers_sent else None)
        self.finish()

    def app_failed(self, result: Any, logged: bool = False) -> None:
        """The response body raised: answer 500 if nothing was sent yet, else
        cut the response short (only the close can tell the client)."""
        self.keep_alive = False
        if self.headers_sent:
            return
        # brim.server.wsgi's response wrapper has logged what the body raised;
        # log here only what it cannot see.
        error = sys.exc_info()[1]
        if isinstance(error, (AssertionError, TypeError)) and not logged:
            self.sub.logger.error('%s: %s', self.head and self.head.target, error)
        state = getattr(result, 'state', None)
        if state is not None:
            state[:] = ['500 Internal Server Error']  # what the access log shows
        self.out_buf = [b'500 Internal Server Error\n']
        self.status = None
        self.start_response('500 Internal Server Error', [('Content-Type', 'text/plain; charset=utf-8')])
        self.flush(len(self.out_buf[0]))

    def finish(self) -> None:
        """End the response body (the last chunk, or a check of Content-Length)."""
        if self.out_chunked:
            self.send(b'0\r\n\r\n')
        elif self.out_length is not None and self.written < self.out_length:
            self.sub.logger.warning('%s: the app sent %d of the %d bytes its Content-Length said; closing',
                                    self.head and self.head.target, self.written, self.out_length)
            self.keep_alive = False

    def environ(self, head: Head, body: RequestBody) -> dict:
        """The PEP 3333 environ for ``head``.

        Header fields become ``HTTP_*`` keys (repeats joined with ``,``;
        ``Cookie`` with ``;``, RFC 6265 §5.4); fields whose names hold an
        underscore are dropped, since ``X_Auth`` and ``X-Auth`` would share
        one key (a proxy may strip one and pass the other).
        """
        env = self.base_env.copy()
        path, _, query = head.target.partition('?')
        env['REQUEST_METHOD'] = head.method
        env['SCRIPT_NAME'] = ''
        env['RAW_PATH_INFO'] = path
        env['PATH_INFO'] = unquote_to_bytes(path).decode('latin-1') if '%' in path else path
        env['QUERY_STRING'] = query
        env['SERVER_PROTOCOL'] = head.version
        env['wsgi.input'] = body
        for name, value in head.headers:
            if name == 'content-type':
                env['CONTENT_TYPE'] = value
            elif name == 'content-length':
                env['CONTENT_LENGTH'] = value
            elif '_' not in name:
                key = 'HTTP_' + name.upper().replace('-', '_')
                if key in env:
                    env[key] += ('; ' if key == 'HTTP_COOKIE' else ',') + value
                else:
                    env[key] = value
        return env

    # -- closing ---------------------------------------------------------------

    def linger(self) -> None:
        """Stop sending, and read (dropping it) what the client still sends for
        up to :data:`LINGER` seconds, so it reads the response before the close."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + min(LINGER, self.timeout or LINGER)
            while self.recv(deadline):
                pass
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        """Close the connection, first lingering (:meth:`linger`) if it was
        marked to close after a response; never raises OSError.
        """
        if self.must_close:
            self.linger()
        try:
            self.sock.close()
        except OSError:
            pass
