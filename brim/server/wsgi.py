"""The WSGI subserver: pipeline, environ extras, status counting, access log.

Each worker serves HTTP with brim's own accept loop (:class:`WSGIRunner`)
on the shared socket and brim's own HTTP/1.1 connection handling
(:mod:`brim.server.httpconn`, parsing with :mod:`brim.server.http1`), on
Eventlet's green sockets. Every request goes through
:meth:`WSGISubserver.__call__`, which adds brim's environ extras, runs the
``apps =`` pipeline (PEP 3333), counts the status into the worker's stats
bucket and logs one access line at NOTICE when the response is closed.

What SPEC §6 asks of "Eventlet's WSGI server" holds here: tracebacks are
never sent to clients, and ``client_timeout`` bounds every wait on a client.

Invariant: Eventlet is imported only inside :meth:`WSGISubserver.make_runner`.
"""

from __future__ import annotations

import errno
import itertools
import os
import select
import sys
import time
from bisect import bisect_left
from typing import Any, Callable, Iterable, Iterator, Optional

from brim.http import HTTPException
from brim.log import NOTICE, AccessLog, access_line, sysloggable_excinfo, utc_stamp
from brim.server.http1 import Limits
from brim.server.httpconn import BUSY, IDLE, Connection
from brim.server.subserver import Runner, StopServing, StreamSubserver, import_eventlet, wait_for_pool
from brim.stats import DURATION_BOUNDS, DURATION_BUCKETS, DURATION_SUM, MASK, BucketStats

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


#: Seconds a graceful stop leaves idle keep-alive connections open for one
#: more request (answered with ``Connection: close``) before closing them.
IDLE_LINGER = 1.0


class WSGIRunner(Runner):
    """Serves HTTP on the worker's socket: brim's accept loop, one
    :class:`~brim.server.httpconn.Connection` per client in its own green
    thread, at most ``concurrent_per_worker`` at once (past that, new
    connections wait in the kernel's backlog, not in this process).

    A graceful stop loses nothing:

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
        values = sub.values
        self.sub = sub
        self.eventlet = eventlet
        self.sock = eventlet.greenio.GreenSocket(sub.sock)
        self.tls = sub.ssl_context is not None
        self.timeout: Optional[float] = values['client_timeout'] or None
        self.limits = Limits(values['max_request_line'], values['max_header_line'], values['max_headers'],
                             values['max_header_size'])
        self.max_body_size: int = values['max_body_size']
        self.in_chunk: int = values['wsgi_input_iter_chunk_size']
        self.out_min: int = values['wsgi_output_iter_chunk_size']
        self.slots = eventlet.semaphore.Semaphore(values['concurrent_per_worker'])
        self.connections: dict[int, Connection] = {}
        self.balancer = sub.balancer(eventlet, self.sock, stats, self.open_count)
        #: ``(cells, bytes_in index, bytes_out index)`` for each Connection's counting.
        self.byte_cells = (stats.cells, stats.cell('bytes_in'), stats.cell('bytes_out'))
        self.draining = False
        self.thread: Any = None
        self.serving = True
        self.yield_now = eventlet.sleep
        host, port = self.sock.getsockname()[:2]
        self.environ = sub.base_environ()
        self.environ.update({
            'SERVER_NAME': host, 'SERVER_PORT': str(port), 'GATEWAY_INTERFACE': 'CGI/1.1',
            'wsgi.version': (1, 0), 'wsgi.url_scheme': 'https' if self.tls else 'http',
            'wsgi.errors': sys.stderr, 'wsgi.multithread': True, 'wsgi.multiprocess': True,
            'wsgi.run_once': False, 'wsgi.input_terminated': True,
        })
        if self.tls:
            self.environ['HTTPS'] = 'on'

    def connection_environ(self, sock: Any, address: Any) -> dict:
        """The environ keys that are the same for every request of one connection."""
        env = self.environ.copy()
        if isinstance(address, tuple):
            env['REMOTE_ADDR'], env['REMOTE_PORT'] = address[0], str(address[1])
        else:
            env['REMOTE_ADDR'], env['REMOTE_PORT'] = str(address or ''), ''
        return env

    def open_count(self) -> int:
        return len(self.connections)

    def sample(self) -> None:
        self.balancer.sample()

    def serve(self) -> None:
        self.thread = self.eventlet.getcurrent()
        try:
            while self.serving:
                # Take a slot before accepting: past concurrent_per_worker,
                # connections wait in the kernel's backlog (or go to another
                # worker), not in this process.
                self.slots.acquire()
                try:
                    client, address = self.balancer.accept()
                    if self.tls:
                        # The handshake happens in the connection's own green
                        # thread, under client_timeout (Connection.run).
                        client = self.eventlet.green.ssl.GreenSSLSocket(
                            client, server_side=True, _context=self.sub.ssl_context, do_handshake_on_connect=False)
                except StopServing:
                    break
                except OSError as err:
                    self.slots.release()
                    if not self.serving:
                        break
                    if err.errno not in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                        self.sub.logger.warning('accept failed: %s', err)
                        self.eventlet.sleep(0.05)
                    continue
                conn = Connection(self, client, address)
                self.connections[id(conn)] = conn
                self.balancer.publish()
                self.eventlet.spawn_n(self._run, conn)
        except StopServing:
            pass
        wait_for_pool(self.eventlet, None, self.connections)

    def _run(self, conn: Connection) -> None:
        try:
            conn.run()
        finally:
            self.connections.pop(id(conn), None)
            self.balancer.publish()
            self.slots.release()

    def stop_accepting(self) -> None:
        if not self.end_accept_loop():
            return
        self.balancer.stop()
        self.sub.stop_publishing()
        self.draining = True
        self.eventlet.spawn_n(self.close_idle, time.monotonic())

    def close_idle(self, since: float) -> None:
        """While connections remain, close those idle for :data:`IDLE_LINGER`
        seconds (counted from ``since`` at the latest) with nothing received."""
        while self.connections:
            now = time.monotonic()
            for conn in list(self.connections.values()):
                if conn.state == IDLE and now - max(conn.idle_since, since) >= IDLE_LINGER \
                        and not conn.buf and not _has_input(conn.sock):
                    conn.state = BUSY  # closing
                    self.eventlet.greenio.shutdown_safe(conn.sock)
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


def txn_prefix() -> str:
    """The first 24 hex digits of a worker's transaction ids.

    The ids are RFC 9562 version 8 UUIDs: 90 random bits drawn once per
    worker (``os.urandom``), the version and variant bits, and a 32-bit
    serial number counted per request in the last 8 digits. So an id costs
    a string format, where ``uuid.uuid4()`` reads 16 random bytes from the
    kernel per request.
    """
    digits = bytearray(os.urandom(12).hex(), 'ascii')
    digits[12] = ord('8')  # version 8 (RFC 9562 §5.8)
    digits[16] = ord('89ab'[digits[16] % 4])  # variant 10
    return digits.decode('ascii')


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
        self.access_log: Optional[AccessLog] = None
        self.txn_prefix = ''
        self.txn_serial = itertools.count()
        # Cell indexes of the per-request stats, set by make_runner (see finish_request).
        self._cells: Any = None
        self._in_flight = 0
        # Requests in flight in this process: stored whole (not added to), so
        # a recycled bucket's next writer overwrites what a dead worker left.
        self.in_flight = 0
        self._publish_in_flight = True
        self._duration_cells: tuple[int, ...] = ()
        self._duration_sum = 0
        self.runner: Optional[WSGIRunner] = None

    def app_specs(self) -> list[tuple[str, str]]:
        conf = self.server.conf
        return [(name, conf.get(name, 'call')) for name in self.values['apps']]

    def builtin_stats(self) -> list[tuple[str, str]]:
        """Adds, per worker (all rolled up by sum): ``request_count``, the
        ``status_<n>xx_count`` classes and ``status_<code>_count`` of
        ``count_status_codes``; ``in_flight``, the requests in the pipeline
        now (from the head read until the response is sent and closed: the
        green threads busy with a request; a ``/stats`` request counts
        itself); and the request-duration histogram: one stat per bucket of
        :data:`brim.stats.DURATION_BUCKETS` (non-cumulative counts) and
        ``request_duration_sum_us`` (microseconds). A request refused
        before the pipeline (400, 408, 413, 414, 431 of a bad head) is in
        ``request_count`` and its status, not in the histogram."""
        stats = super().builtin_stats() + [('request_count', 'sum')]
        stats.extend(('status_%dxx_count' % n, 'sum') for n in range(2, 6))
        stats.extend(('status_%d_count' % code, 'sum') for code in self.values['count_status_codes'])
        stats.append(('in_flight', 'sum'))
        stats.extend((name, 'sum') for name in DURATION_BUCKETS)
        stats.append((DURATION_SUM, 'sum'))
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
        self._cells = stats.cells
        self._in_flight = stats.cell('in_flight')
        self.in_flight = 0
        self._publish_in_flight = True
        stats.set('in_flight', 0)  # whatever a worker before this one left
        self._duration_cells = tuple(stats.cell(name) for name in DURATION_BUCKETS)
        self._duration_sum = stats.cell(DURATION_SUM)
        self.build_pipeline()
        runner = self.runner = WSGIRunner(self, stats)
        hub = runner.eventlet.hubs.get_hub()
        self.access_log = AccessLog(self.logger, lambda flush: hub.schedule_call_global(0, flush))
        self.txn_prefix = txn_prefix()
        return runner

    @property
    def draining(self) -> bool:
        """True once this worker has stopped accepting (a graceful stop: ``shutdown``,
        SIGHUP, the old server of a restart, a recycled worker); requests still
        arriving on its open connections are answered with ``Connection: close``."""
        return self.runner is not None and self.runner.draining

    def stop_publishing(self) -> None:
        """Stop writing ``in_flight`` (the worker no longer accepts: after a
        recycle, a new worker writes this bucket's gauges while this one
        finishes; its counters, histogram and bytes still add up)."""
        self._publish_in_flight = False

    def new_txn(self) -> str:
        """A new transaction id (``brim.txn``): a UUID as 32 hex digits,
        unique across workers and restarts, made without a system call.

        See :func:`txn_prefix`.
        """
        return '%s%08x' % (self.txn_prefix or txn_prefix(), next(self.txn_serial) & 0xffffffff)

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
        """Run one request through the pipeline (PEP 3333), adding brim's
        environ extras; an app that raises gets a logged 500, and an error
        raised by ``wsgi.input`` (408, 400, 413, a client gone) that the
        app left uncaught is answered as itself."""
        start = time.time()
        self.in_flight += 1
        if self._publish_in_flight and self._cells is not None:
            self._cells[self._in_flight] = self.in_flight
        state: list = []
        env['brim.start'] = start
        env['brim.txn'] = env.get('HTTP_X_TXN') or self.new_txn()
        env['brim.log_info'] = []
        raw_input = env.get('wsgi.input')

        def counting_start_response(status: str, headers: list, exc_info: Any = None) -> Any:
            if state:
                state[0] = status
            else:
                state.append(status)
            return start_response(status, headers, exc_info)

        try:
            body: Iterable[bytes] = self.pipeline(env, counting_start_response)
        except Exception as err:
            exc_info = sys.exc_info()
            try:
                if err is getattr(raw_input, 'error', None):
                    body = self._input_failed(env, err, counting_start_response, exc_info)
                else:
                    self.logger.error('%s %s: app raised: %s', env['brim.txn'], env.get('PATH_INFO'),
                                      sysloggable_excinfo(*exc_info))
                    body = _error_response(counting_start_response, '500 Internal Server Error', exc_info)
            finally:
                del exc_info
        return _Response(self, env, body, state, start, raw_input)

    def _input_failed(self, env: dict, err: BaseException, start_response: Callable[..., Any],
                      exc_info: Any) -> Iterable[bytes]:
        """Answer a request whose body could not be read (the connection then closes)."""
        self.logger.info('%s %s: %s', env['brim.txn'], env.get('PATH_INFO'), ' '.join(str(err).split()))
        if isinstance(err, HTTPException):
            return err(env, lambda status, headers: start_response(status, headers, exc_info))
        return []  # the client is gone: nothing to answer (logged as 499)

    def count_rejected(self, code: int) -> None:
        """Count a request refused before it reached the pipeline."""
        if self.stats is not None:
            self.stats.incr('request_count')
            self.stats.incr('status_%dxx_count' % (code // 100))
            if code in self.counted:
                self.stats.incr('status_%d_count' % code)

    def finish_request(self, response: _Response) -> None:
        """Count the status, the duration (from the start of :meth:`__call__`
        to this close, wall clock) into the histogram and its sum, take the
        request out of ``in_flight``, and log the access line of a closed
        response."""
        env = response.env
        disconnected = not response.finished
        if response.state:
            code = int(response.state[0][:3])
        else:
            code = HTTP_CLIENT_DISCONNECT
        stats = self.stats
        cells = self._cells
        self.in_flight -= 1
        if cells is not None:
            # Per-request stats by cell index: no dict lookups on this path.
            seconds = time.time() - response.start
            if self._publish_in_flight:
                cells[self._in_flight] = self.in_flight
            index = self._duration_cells[bisect_left(DURATION_BOUNDS, seconds)]
            cells[index] = (cells[index] + 1) & MASK
            index = self._duration_sum
            cells[index] = (cells[index] + int(seconds * 1e6 if seconds > 0 else 0)) & MASK
        if stats is not None:
            stats.incr('request_count')
            if 200 <= code < 600:
                stats.incr('status_%dxx_count' % (code // 100))
            if code in self.counted:
                stats.incr('status_%d_count' % code)
        if self.logger.isEnabledFor(NOTICE):
            line = self.access_line(env, code, response, disconnected)
            if self.access_log is not None:
                self.access_log.write(line)
            else:
                self.logger.log(NOTICE, '%s', line)

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
