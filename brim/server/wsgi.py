"""The WSGI subserver: pipeline, environ extras, status counting, access log.

Each worker serves HTTP with Eventlet's request handling and brim's own
accept loop (:class:`WSGIRunner`) on the shared socket;
every request goes through :meth:`WSGISubserver.__call__`, which adds brim's
environ extras, runs the ``apps =`` pipeline (PEP 3333), counts the status
into the worker's stats bucket and logs one access line at NOTICE when the
response is closed.

Departures from Eventlet's defaults, on purpose (SPEC §6): tracebacks are
never sent to clients (``debug=False``), the socket timeout is
``client_timeout``, and Eventlet's own access log is off (brim writes its
own).

Invariant: Eventlet is imported only inside :meth:`WSGISubserver.make_runner`.
"""

from __future__ import annotations

import errno
import select
import sys
import time
import uuid
from typing import Any, Callable, Iterable, Iterator, Optional
from urllib.parse import urlsplit

from brim.log import NOTICE, access_line, sysloggable_excinfo, utc_stamp
from brim.server.subserver import Runner, StopServing, StreamSubserver, import_eventlet, wait_for_pool
from brim.stats import BucketStats

#: The status brimd logs and counts for a request whose client went away
#: before the response started (nginx's convention; not an RFC 9110 code).
HTTP_CLIENT_DISCONNECT = 499

WSGIApp = Callable[[dict, Callable[..., Any]], Iterable[bytes]]


def not_found_app(env: dict, start_response: Callable[..., Any]) -> list[bytes]:
    """The end of every pipeline: 404 Not Found (RFC 9110 §15.5.5)."""
    body = b'404 Not Found\n'
    start_response('404 Not Found', [('Content-Type', 'text/plain; charset=utf-8'),
                                     ('Content-Length', str(len(body)))])
    return [body]


def _error_response(start_response: Callable[..., Any], status: str, exc_info: Any = None) -> list[bytes]:
    body = status.encode('ascii') + b'\n'
    headers = [('Content-Type', 'text/plain; charset=utf-8'), ('Content-Length', str(len(body)))]
    start_response(status, headers, exc_info)
    return [body]


class _EventletLog:
    """Eventlet's server log, sent to the subserver's logger as one-line records."""

    def __init__(self, logger: Any) -> None:
        self.logger = logger

    def _flat(self, msg: Any, args: tuple) -> str:
        text = (str(msg) % args) if args else str(msg)
        return ' '.join(text.split())

    def debug(self, msg: Any, *args: Any) -> None:
        self.logger.debug('eventlet: %s', self._flat(msg, args))

    info = debug

    def warning(self, msg: Any, *args: Any) -> None:
        self.logger.warning('eventlet: %s', self._flat(msg, args))

    def error(self, msg: Any, *args: Any) -> None:
        self.logger.error('eventlet: %s', self._flat(msg, args))

    exception = error

    def write(self, text: str) -> None:
        self.debug(text)


class _Input:
    """``wsgi.input`` whose iteration reads ``wsgi_input_iter_chunk_size`` bytes at a time."""

    __slots__ = ('_input', '_chunk')

    def __init__(self, wsgi_input: Any, chunk: int) -> None:
        self._input = wsgi_input
        self._chunk = chunk

    def read(self, size: Optional[int] = -1) -> bytes:
        return self._input.read(size)

    def readline(self, size: Optional[int] = -1) -> bytes:
        return self._input.readline(size)

    def readlines(self, hint: Optional[int] = -1) -> list[bytes]:
        return self._input.readlines(hint)

    def __iter__(self) -> Iterator[bytes]:
        read, chunk = self._input.read, self._chunk
        while True:
            data = read(chunk)
            if not data:
                return
            yield data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._input, name)


class _Response:
    """Wraps the pipeline's response iterable: counts bytes out, and on
    ``close()`` (PEP 3333) counts the status and writes the access line."""

    __slots__ = ('sub', 'env', 'body', 'state', 'start', 'raw_input', 'bytes_out', 'finished')

    def __init__(self, sub: 'WSGISubserver', env: dict, body: Iterable[bytes], state: list,
                 start: float, raw_input: Any) -> None:
        self.sub = sub
        self.env = env
        self.body = body
        self.state = state
        self.start = start
        self.raw_input = raw_input
        self.bytes_out = 0
        self.finished = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.body:
                self.bytes_out += len(chunk)
                yield chunk
            self.finished = True
        except GeneratorExit:
            raise
        except Exception:
            self.sub.logger.error('%s %s: the response body raised: %s', self.env.get('brim.txn'),
                                  self.env.get('PATH_INFO'), sysloggable_excinfo(*sys.exc_info()))
            raise

    def close(self) -> None:
        try:
            close = getattr(self.body, 'close', None)
            if close is not None:
                close()
        finally:
            self.sub.finish_request(self)


_PROTOCOL: list = []

#: Seconds a graceful stop leaves idle keep-alive connections open for one
#: more request (answered with ``Connection: close``) before closing them.
IDLE_LINGER = 1.0


def framing_error(version: str, headers: Any) -> Optional[str]:
    """Return why a request head is ambiguous (RFC 9112), or None if it is fine.

    Args:
        version: The request's HTTP version, e.g. ``'HTTP/1.1'``.
        headers: An ``email.message.Message`` of the request header fields.
    """
    lengths = headers.get_all('content-length') or []
    if len({value.strip() for value in lengths}) > 1:
        # RFC 9112 §6.3: differing Content-Length values are an unrecoverable error.
        return 'differing Content-Length values'
    hosts = headers.get_all('host') or []
    if version == 'HTTP/1.1' and len(hosts) != 1:
        # RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status
        # code to any HTTP/1.1 request message that lacks a Host header field
        # and to any request message that contains more than one Host header
        # field line".
        return 'no Host header' if not hosts else 'more than one Host header'
    if len(hosts) > 1:
        return 'more than one Host header'
    return None


def origin_form(target: str, headers: Any) -> str:
    """Turn an absolute-form request target into origin form.

    RFC 9112 §3.2.2: "A server MUST accept the absolute-form in requests"
    and, when it does, "MUST ignore the received Host header field (if any)
    and instead use the host information of the request-target": the Host
    header is replaced by the target's authority.

    Args:
        target: ``http://host[:port]/path?query``.
        headers: The request's ``email.message.Message``; its Host is replaced.

    Returns:
        ``/path?query`` (``/`` when the target has no path).
    """
    parts = urlsplit(target)
    del headers['Host']
    headers['Host'] = parts.netloc
    return (parts.path or '/') + ('?' + parts.query if parts.query else '')


def _protocol_class(eventlet_wsgi: Any) -> type:
    """Eventlet's HttpProtocol with brim's strict framing and PEP 3333 environ.

    Departures from Eventlet, on purpose:

    - ``SERVER_PROTOCOL`` is the version the client used (PEP 3333, after
      CGI, RFC 3875 §4.1.16); Eventlet always says ``HTTP/1.0``.
    - Heads that :func:`framing_error` finds ambiguous get 400 and a closed
      connection before any app runs.
    - A malformed request line gets a 400 with a status line (Eventlet
      answers it as HTTP/0.9, with no status line).
    - An absolute-form request target is served as its origin form
      (:func:`origin_form`); Eventlet takes the whole URL as the path.
    - After each request the connection's green thread yields, so a client
      pipelining requests cannot starve the others (or the watchdog's
      heartbeat).
    """
    if not _PROTOCOL:
        sleep = import_eventlet().sleep

        class BrimHttpProtocol(eventlet_wsgi.HttpProtocol):
            default_request_version = 'HTTP/1.0'
            path: str  # the request target (http.server.BaseHTTPRequestHandler)

            def parse_request(self) -> bool:
                if not super().parse_request():
                    return False
                if self.server.draining:
                    self.close_connection = 1
                reason = framing_error(self.request_version, self.headers)
                if reason is None:
                    if self.path[:1] != '/' and self.path.lower().startswith(('http://', 'https://')):
                        self.path = origin_form(self.path, self.headers)
                    return True
                body = ('400 Bad Request: %s\n' % reason).encode('ascii')
                self.wfile.write(b'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n'
                                 b'Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n%s'
                                 % (len(body), body))
                self.close_connection = 1
                self.server.app.count_rejected(400)
                return False

            def get_environ(self) -> dict:
                env = super().get_environ()
                env['SERVER_PROTOCOL'] = self.request_version
                return env

            def handle_one_request(self) -> None:
                super().handle_one_request()
                # Eventlet reads a waiting (pipelined) request without
                # yielding: without this, one busy connection would starve
                # every other one, the heartbeat and the signal handling.
                sleep(0)
                if self.server.draining:
                    # Kept alive, as the response said: idle from now on.
                    self.server.idle_since[id(self.conn_state)] = time.monotonic()
        _PROTOCOL.append(BrimHttpProtocol)
    return _PROTOCOL[0]


class WSGIRunner(Runner):
    """Serves HTTP on the worker's socket with Eventlet's request handling
    (``eventlet.wsgi.Server`` and brim's protocol class) and brim's own
    accept loop, so a graceful stop loses nothing:

    - :meth:`stop_accepting` ends the accept loop at once; connections
      still queued in the kernel stay for the other workers (or the next
      brimd, after a restart), since the socket itself stays open there.
    - Requests in progress are answered as they began (a keep-alive
      response stays keep-alive). Every request that arrives afterwards on
      an open connection is answered with ``Connection: close``, then the
      connection closes (RFC 9112 §9.6): a busy keep-alive client learns of
      the close from a response, never from a refused request.
    - Keep-alive connections idle for :data:`IDLE_LINGER` seconds, with
      nothing received, are closed.
    """

    def __init__(self, sub: 'WSGISubserver', stats: BucketStats) -> None:
        eventlet = import_eventlet()
        self.sub = sub
        self.eventlet = eventlet
        self.wsgi = eventlet.wsgi
        self.sock = eventlet.greenio.GreenSocket(sub.sock)
        if sub.ssl_context is not None:
            green_ssl = eventlet.green.ssl
            # The handshake happens on the first read, inside the request's
            # own green thread and under client_timeout, not in accept().
            self.sock = green_ssl.GreenSSLSocket(self.sock, server_side=True, _context=sub.ssl_context,
                                                 do_handshake_on_connect=False)
        self.pool = eventlet.GreenPool(sub.values['concurrent_per_worker'])
        self.timeout = sub.values['client_timeout'] or None
        self.server = self.wsgi.Server(
            self.sock, self.sock.getsockname(), sub, log=_EventletLog(sub.logger),
            environ=sub.base_environ(), protocol=_protocol_class(self.wsgi),
            minimum_chunk_size=sub.values['wsgi_output_iter_chunk_size'], log_output=False,
            debug=False, socket_timeout=self.timeout)
        self.server.draining = False
        self.server.idle_since = {}  # id(conn) -> monotonic time, while draining
        self.connections: dict[int, list] = {}  # id -> [address, socket, state] (Eventlet's conn_state)
        self.thread: Any = None
        self.serving = True

    def open_count(self) -> int:
        return len(self.connections)

    def serve(self) -> None:
        self.thread = self.eventlet.getcurrent()
        idle = self.wsgi.STATE_IDLE
        try:
            while self.serving:
                try:
                    client, address = self.sock.accept()
                except StopServing:
                    break
                except OSError as err:
                    if not self.serving:
                        break
                    if err.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                        self.sub.logger.warning('accept failed: %s', err)
                        self.eventlet.sleep(0.05)
                    continue
                client.settimeout(self.timeout)
                conn = [address, client, idle]
                self.connections[id(conn)] = conn
                # spawn() waits while concurrent_per_worker connections are
                # open: further ones wait in the kernel's backlog.
                self.pool.spawn(self.server.process_request, conn).link(self._forget, conn)
        except StopServing:
            pass
        wait_for_pool(self.eventlet, self.pool, self.connections)

    def _forget(self, thread: Any, conn: list) -> None:
        self.connections.pop(id(conn), None)
        conn[2] = self.wsgi.STATE_CLOSE
        self.eventlet.greenio.shutdown_safe(conn[1])
        conn[1].close()

    def stop_accepting(self) -> None:
        if not self.end_accept_loop():
            return
        self.server.draining = True
        self.eventlet.spawn_n(self.close_idle, time.monotonic())

    def close_idle(self, since: float) -> None:
        """While connections remain, close those idle for :data:`IDLE_LINGER`
        seconds (counted from ``since`` at the latest) with nothing received."""
        idle_since = self.server.idle_since
        while self.connections:
            now = time.monotonic()
            for key, conn in list(self.connections.items()):
                if conn[2] == self.wsgi.STATE_IDLE and now - idle_since.get(key, since) >= IDLE_LINGER \
                        and not _has_input(conn[1]):
                    conn[2] = self.wsgi.STATE_CLOSE
                    self.eventlet.greenio.shutdown_safe(conn[1])
            self.eventlet.sleep(IDLE_LINGER / 10)


def _has_input(sock: Any) -> bool:
    """True if bytes (or the end of the stream) wait to be read on ``sock``."""
    pending = getattr(sock, 'pending', None)
    if pending is not None:
        try:
            if pending():
                return True
        except (OSError, ValueError):
            pass
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return False


class WSGISubserver(StreamSubserver):
    """Subserver for a ``[wsgi]``, ``[wsgi2]``, ``[wsgi#name]`` section.

    Apps reach it as ``env['brim']``: :meth:`clone_env` and
    :meth:`get_response` make subrequests.
    """

    kind = 'wsgi'
    app_kind = 'wsgi'

    def __init__(self, server: Any, conf: Any) -> None:
        super().__init__(server, conf)
        self.pipeline: WSGIApp = not_found_app
        self.stats: Any = None
        self.counted = frozenset(self.values['count_status_codes'])

    def app_specs(self) -> list[tuple[str, str]]:
        conf = self.server.conf
        return [(name, conf.get(name, 'call')) for name in self.values['apps']]

    def builtin_stats(self) -> list[tuple[str, str]]:
        stats = super().builtin_stats() + [('request_count', 'sum')]
        stats.extend(('status_%dxx_count' % n, 'sum') for n in range(2, 6))
        stats.extend(('status_%d_count' % code, 'sum') for code in self.values['count_status_codes'])
        return stats

    def unit_stat(self) -> str:
        return 'request_count'

    def describe(self) -> str:
        return '%s, apps: %s' % (super().describe(), ' '.join(
            '%s (%s)' % (section, dotted) for section, dotted in self.app_specs()) or 'none')

    def build_pipeline(self) -> WSGIApp:
        """Chain the loaded apps, last first, ending in :func:`not_found_app`."""
        app: WSGIApp = not_found_app
        for loaded in reversed(self.apps):
            app = loaded.cls(loaded.section, loaded.parsed_conf, app)
        self.pipeline = app
        return app

    def make_runner(self, index: int, stats: BucketStats) -> Runner:
        self.stats = stats
        self.build_pipeline()
        return WSGIRunner(self, stats)

    def base_environ(self) -> dict:
        """The environ keys that are the same for every request of this worker."""
        return {
            'brim': self,
            'brim.stats': self.stats,
            'brim.logger': self.logger,
            'brim.json_dumps': self.json_dumps,
            'brim.json_loads': self.json_loads,
        }

    # -- the request path ------------------------------------------------------

    def __call__(self, env: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        start = time.time()
        state: list = []
        env['brim.start'] = start
        env['brim.txn'] = env.get('HTTP_X_TXN') or uuid.uuid4().hex
        env['brim.log_info'] = []
        raw_input = env.get('wsgi.input')
        env['wsgi.input'] = _Input(raw_input, self.values['wsgi_input_iter_chunk_size'])

        def counting_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            if state:
                state[0] = status
            else:
                state.append(status)
            return start_response(status, headers, exc_info)

        try:
            body: Iterable[bytes] = self.pipeline(env, counting_start_response)
        except Exception:
            exc_info = sys.exc_info()
            self.logger.error('%s %s: app raised: %s', env['brim.txn'], env.get('PATH_INFO'),
                              sysloggable_excinfo(*exc_info))
            try:
                body = _error_response(counting_start_response, '500 Internal Server Error', exc_info)
            finally:
                del exc_info
        return _Response(self, env, body, state, start, raw_input)

    def count_rejected(self, code: int) -> None:
        """Count a request refused before it reached the pipeline."""
        if self.stats is not None:
            self.stats.incr('request_count')
            self.stats.incr('status_%dxx_count' % (code // 100))
            if code in self.counted:
                self.stats.incr('status_%d_count' % code)

    def finish_request(self, response: _Response) -> None:
        """Count the status and log the access line of a closed response."""
        env = response.env
        disconnected = not response.finished
        if response.state:
            code = int(response.state[0][:3])
        else:
            code = HTTP_CLIENT_DISCONNECT
        stats = self.stats
        if stats is not None:
            stats.incr('request_count')
            if 200 <= code < 600:
                stats.incr('status_%dxx_count' % (code // 100))
            if code in self.counted:
                stats.incr('status_%d_count' % code)
        if self.logger.isEnabledFor(NOTICE):
            self.logger.log(NOTICE, '%s', self.access_line(env, code, response, disconnected))

    def access_line(self, env: dict, code: int, response: _Response, disconnected: bool) -> str:
        """The access-log line of SPEC §6 for one request."""
        forwarded = env.get('HTTP_X_FORWARDED_FOR')
        client = (forwarded.split(',')[0].strip() if forwarded else
                  env.get('HTTP_X_CLUSTER_CLIENT_IP') or env.get('REMOTE_ADDR'))
        path = env.get('RAW_PATH_INFO') or (env.get('SCRIPT_NAME', '') + env.get('PATH_INFO', ''))
        if env.get('QUERY_STRING'):
            path += '?' + env['QUERY_STRING']
        raw_input = response.raw_input
        bytes_in = getattr(raw_input, 'position', None)
        if bytes_in is None:
            bytes_in = env.get('CONTENT_LENGTH') or 0
        fields: list[object] = [
            client, env.get('REMOTE_ADDR'),
            env.get('HTTP_X_AUTH_TOKEN') if self.values.get('log_auth_token') else None,
            env.get('REMOTE_USER'), utc_stamp(response.start), env.get('REQUEST_METHOD'), path,
            env.get('SERVER_PROTOCOL'), code, response.bytes_out, bytes_in,
            env.get('HTTP_REFERER'), env.get('HTTP_USER_AGENT'), env.get('brim.txn'),
            '%.5f' % (time.time() - response.start), 'disconnect' if disconnected else None,
            env.get('brim.authenticated_user'), env.get('brim.wsgi_source'),
        ]
        fields.extend(env.get('brim.log_info') or ())
        if self.values['log_headers']:
            fields.append('\n'.join('%s: %s' % (key[5:].replace('_', '-').title(), value)
                                    for key, value in sorted(env.items()) if key.startswith('HTTP_')))
        return access_line(fields)

    # -- subrequests -----------------------------------------------------------

    def clone_env(self, env: dict) -> dict:
        """Return a new environ for a subrequest made from ``env``.

        Copies ``brim``, ``brim.json_dumps``, ``brim.json_loads``,
        ``brim.logger``, ``brim.stats``, ``brim.txn``, ``SERVER_NAME``,
        ``SERVER_PORT``, ``SERVER_PROTOCOL``; sets ``HTTP_REFERER`` to the
        original path and ``HTTP_USER_AGENT`` to ``'clone_env'``. Set
        ``REQUEST_METHOD``, ``PATH_INFO`` and ``wsgi.input`` yourself.
        """
        new = {key: env[key] for key in (
            'brim', 'brim.json_dumps', 'brim.json_loads', 'brim.logger', 'brim.stats', 'brim.txn',
            'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL') if key in env}
        new['HTTP_REFERER'] = env.get('RAW_PATH_INFO') or env.get('PATH_INFO', '')
        new['HTTP_USER_AGENT'] = 'clone_env'
        new['brim.log_info'] = []
        return new

    def get_response(self, env: dict, next_app: Optional[WSGIApp] = None
                     ) -> tuple[str, list[tuple[str, str]], Any, Iterable[bytes]]:
        """Run a subrequest through the pipeline (or from ``next_app`` on).

        Returns:
            ``(status_line, headers, exc_info, content_iter)``.
        """
        captured: list = ['', [], None]

        def start_response(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
            captured[:] = [status, headers, exc_info]
            return lambda data: None

        body = (next_app or self.pipeline)(env, start_response)
        return captured[0], captured[1], captured[2], body
