"""Subserver base classes and the green-thread run loop of a worker.

A :class:`Subserver` is one subserver section of the conf (``[wsgi]``,
``[tcp#raw]``, ``[daemons]`` ...). It is built in the main process from the
resolved conf; its apps are loaded where they run (the probe child, each
worker or daemon, or the foreground process).

Invariant: Eventlet is imported only through :func:`import_eventlet`:
in workers, the foreground process, and a WSGI, TCP or UDP supervisor just
before it forks its workers (so they share its pages); never in the main
process.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import socket
import ssl
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, Optional

from brim.errors import AppLoadError, StartupError
from brim.loader import LoadedApp, load_app
from brim.log import flush_access_logs, get_logger, reopen_log_files, sysloggable_excinfo
from brim.options import SubserverConf
from brim.service import get_listening_tcp_socket, get_listening_udp_socket, heartbeat, take_listening_socket
from brim.stats import MASK, BucketStats, accept_backlog

if TYPE_CHECKING:
    from brim.server.master import Server

_setproctitle: Optional[Callable[[str], None]]
try:  # setproctitle is optional: process titles are a convenience.
    from setproctitle import setproctitle as _setproctitle
except ImportError:  # pragma: no cover
    _setproctitle = None


def import_eventlet() -> Any:
    """Import Eventlet (never in the main process) and return it.

    Eventlet warns on import that it is in bugfix-only maintenance; brimd
    knows, and keeps that line out of every worker's log.
    """
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import eventlet
        import eventlet.greenio
        import eventlet.hubs
        from eventlet.green import select as _select, ssl as _ssl  # noqa: F401
    return eventlet


def set_title(title: str) -> None:
    """Set the process title (``ps``) when setproctitle is installed."""
    if _setproctitle is not None:
        _setproctitle(title)


class Subserver:
    """Base class of the subservers: the attributes every kind has.

    Args:
        server: The parent :class:`brim.server.Server`.
        conf: The resolved section.

    Attributes:
        server: The parent Server.
        name: The section name (``'wsgi'``, ``'tcp2'``, ``'daemons'``).
        logger: The ``logging.Logger`` of this subserver (``env['brim.logger']``).
        json_dumps, json_loads: The configured functions (``env['brim.json_dumps']``).
    """

    kind = ''
    #: The kind passed to :func:`brim.loader.load_app` for this subserver's apps.
    app_kind = ''

    def __init__(self, server: 'Server', conf: SubserverConf) -> None:
        self.server = server
        self.conf = conf
        self.name = conf.name
        self.values = conf.values
        self.logger = logging.getLogger('brim.' + self.name)
        self.json_dumps: Callable[..., str] = _placeholder
        self.json_loads: Callable[..., Any] = _placeholder
        self.apps: list[LoadedApp] = []

    # -- conf side (main process) ---------------------------------------------

    def app_specs(self) -> list[tuple[str, str]]:
        """``[(section, call)]`` of the classes this subserver runs."""
        return []

    def builtin_stats(self) -> list[tuple[str, str]]:
        """Stats every bucket has regardless of apps: when it started serving,
        and what its supervisor writes (:meth:`supervision_stats`)."""
        return [('start_time', 'worker')] + self.supervision_stats('worker')

    def supervision_stats(self, per_bucket: str) -> list[tuple[str, str]]:
        """Written by the supervisor: ``pid`` (0 while none runs),
        ``restart_count`` (unplanned restarts), ``last_exit`` (the last exit
        status, 128 + N for signal N) and ``backoff`` (seconds until a
        crash-looping worker is started again; 0 when not backing off)."""
        return [('pid', per_bucket), ('restart_count', 'sum'), ('last_exit', per_bucket), ('backoff', per_bucket)]

    def bucket_names(self) -> list[str]:
        """The stats bucket of each worker: ``'0'``, ``'1'``, ... (as many as :meth:`worker_count`)."""
        return [str(i) for i in range(self.worker_count())]

    def worker_count(self) -> int:
        """How many worker processes this subserver runs (1 here)."""
        return 1

    def bind(self, inherited: Optional[list] = None) -> None:
        """Bind listening sockets (IP subservers); called before privileges drop.

        Args:
            inherited: Sockets of the server being replaced; one bound to
                this subserver's address is taken from the list and used.
        """

    def close_sockets(self) -> None:
        """Close this process's copies of the listening sockets."""

    def describe(self) -> str:
        """One line for ``brimd check``."""
        return '[%s]' % self.name

    # -- where apps run ---------------------------------------------------------

    def load_apps(self) -> list[LoadedApp]:
        """Import and check every app (probe child, worker, foreground).

        Raises:
            AppLoadError, ConfError: one line naming the section.
        """
        conf = self.server.conf
        self.apps = [load_app(self.app_kind, section, conf, dotted) for section, dotted in self.app_specs()]
        self.json_dumps = _import_function(self.values['json_dumps'], self.name, 'json_dumps')
        self.json_loads = _import_function(self.values['json_loads'], self.name, 'json_loads')
        return self.apps

    def stats_rows(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """``[(bucket, stats_conf)]`` for the stats layout, after :meth:`load_apps`."""
        stats = self.builtin_stats()
        for app in self.apps:
            stats.extend(app.stats)
        return [(bucket, list(stats)) for bucket in self.bucket_names()]

    def setup_logger(self, console: bool) -> logging.Logger:
        """Configure and return this subserver's logger (``brim.<name>``).

        Args:
            console: True in the foreground: log to stderr when no ``log_file``
                is set and syslog is not reachable.

        Returns:
            :attr:`logger`, now configured from the section's ``log_name``,
            ``log_level`` and ``log_facility`` and ``[brim] log_file``.

        Raises:
            OSError: if ``log_file`` cannot be opened.
        """
        values = self.values
        self.logger = get_logger(self.name, values['log_name'], values['log_level'], values['log_facility'],
                                 console, self.server.values['log_file'])
        return self.logger

    def make_runner(self, index: int, stats: BucketStats) -> 'Runner':
        """Build the green runner of worker ``index`` (worker processes only)."""
        raise NotImplementedError


def _placeholder(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError('json functions are set when apps are loaded')


def _import_function(dotted: str, section: str, option: str) -> Callable[..., Any]:
    module, _, attr = dotted.rpartition('.')
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise AppLoadError('[%s] %s = %r: cannot import it: %s' % (section, option, dotted, err)) from None


class IPSubserver(Subserver):
    """A subserver listening on ``ip:port`` with pre-forked workers.

    Attributes:
        ip, port: The listening address (``port`` is the bound port, so 0
            in the conf becomes the real one after :meth:`bind`).
        sock: The bound ``socket.socket`` (plain, blocking), inherited by workers.
        ssl_context: An ``ssl.SSLContext`` when certfile is set, else None.
    """

    def __init__(self, server: 'Server', conf: SubserverConf) -> None:
        super().__init__(server, conf)
        self.ip: str = self.values['ip']
        self.port: int = self.values['port']
        self.sock: Any = None
        self.ssl_context: Optional[ssl.SSLContext] = None

    def worker_count(self) -> int:
        """The ``workers`` option: how many worker processes share the listening socket."""
        return self.values['workers']

    def unit_stat(self) -> str:
        """The stat counting what a worker serves (requests, connections,
        datagrams), which ``max_requests`` limits."""
        raise NotImplementedError

    def supervision_stats(self, per_bucket: str) -> list[tuple[str, str]]:
        """Adds ``recycle_count``: workers retired by max_requests, max_lifetime or max_rss."""
        return super().supervision_stats(per_bucket) + [('recycle_count', 'sum')]

    def describe(self) -> str:
        shown = '[%s]' % self.ip if ':' in self.ip else self.ip
        tls = ''
        if self.values.get('certfile'):
            tls = ' TLS %s' % ('1.3' if self.values.get('tls_min_version') == '1.3' else '1.2+')
            if self.values.get('ca_certs'):
                tls += ' with client certificates'
        return '[%s] %s on %s:%s%s, %d worker%s' % (self.name, self.kind, shown, self.port, tls,
                                                   self.worker_count(), '' if self.worker_count() == 1 else 's')

    def load_tls(self) -> None:
        """Create :attr:`ssl_context` from certfile/keyfile, ca_certs and
        tls_min_version (before privileges drop).

        The context refuses TLS older than ``tls_min_version`` (1.2 unless
        set to 1.3) and client-initiated renegotiation. With ``ca_certs``,
        every client must present a certificate issued by one of those CAs
        (``ssl.CERT_REQUIRED``); without it, none is asked for. The
        handshake itself happens per connection, in its green thread (see
        the runners).

        Raises:
            StartupError: one line naming the section, option and value:
                keyfile or ca_certs without certfile, or a file that cannot
                be loaded (missing, unreadable, not PEM, key not matching).
        """
        certfile, keyfile = self.values.get('certfile'), self.values.get('keyfile')
        ca_certs = self.values.get('ca_certs')
        if not certfile:
            for option, value in (('keyfile', keyfile), ('ca_certs', ca_certs)):
                if value:
                    raise StartupError('[%s] %s = %r: set certfile too' % (self.name, option, value))
            return
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = (ssl.TLSVersion.TLSv1_3 if self.values.get('tls_min_version') == '1.3'
                                   else ssl.TLSVersion.TLSv1_2)
        # A client-initiated renegotiation is a new handshake outside the
        # client_timeout bound (OpenSSL 3 refuses it already; 1.1.1 does not).
        context.options |= ssl.OP_NO_RENEGOTIATION
        try:
            context.load_cert_chain(certfile, keyfile or None)
        except (OSError, ssl.SSLError) as err:
            raise StartupError('[%s] certfile = %r keyfile = %r: cannot load: %s' % (
                self.name, certfile, keyfile, tls_reason(err))) from None
        if ca_certs:
            try:
                context.load_verify_locations(ca_certs)
            except (OSError, ssl.SSLError) as err:
                raise StartupError('[%s] ca_certs = %r: cannot load: %s' % (
                    self.name, ca_certs, tls_reason(err))) from None
            context.verify_mode = ssl.CERT_REQUIRED
        self.ssl_context = context

    def close_sockets(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass


def tls_reason(err: OSError) -> str:
    """``err`` on one line, without OpenSSL's ``(_ssl.c:NNNN)`` suffix."""
    text = ' '.join(str(err).split())
    if text.endswith(')') and ' (_ssl.c:' in text:
        text = text[:text.rindex(' (_ssl.c:')]
    return text


def tls_handshake(eventlet: Any, conn: Any, timeout: Optional[float], logger: logging.Logger,
                  address: Any) -> bool:
    """Do the TLS handshake on ``conn`` within ``timeout`` seconds in all
    (a deadline, not per read: a client dripping bytes cannot stretch it).

    Args:
        eventlet: The eventlet module (its ``Timeout``).
        conn: The accepted GreenSSLSocket, not yet shaken hands.
        timeout: ``client_timeout`` in seconds, or None for no limit.
        logger: Where a failure is logged.
        address: The client's address, for the log line.

    Returns:
        True if the handshake succeeded; False if it failed or ran out of
        time, which is logged as one line: at INFO, or at DEBUG when the
        client just closed (a port check, a scanner). The caller closes
        the connection.
    """
    deadline = eventlet.Timeout(timeout) if timeout else None
    level, late = logging.INFO, 'not done within client_timeout (%g s)' % (timeout or 0)
    try:
        conn.settimeout(timeout)
        conn.do_handshake()
        return True
    except TimeoutError:  # one read waited client_timeout
        reason = late
    except OSError as err:  # ssl.SSLError, ECONNRESET ...
        reason = tls_reason(err) or type(err).__name__
        if isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError)):
            level = logging.DEBUG
    except eventlet.Timeout as err:
        if err is not deadline:
            raise
        reason = late
    finally:
        if deadline is not None:
            deadline.cancel()
    logger.log(level, 'TLS handshake with %s failed: %s', _address(address), reason)
    return False


def _address(address: Any) -> str:
    if not isinstance(address, tuple):
        return str(address)
    ip, port = address[0], address[1]
    return '[%s]:%s' % (ip, port) if ':' in ip else '%s:%s' % (ip, port)


class StreamSubserver(IPSubserver):
    """IP subserver over TCP (WSGI and raw TCP)."""

    def builtin_stats(self) -> list[tuple[str, str]]:
        """Adds, per worker: ``open_connections``, the connections a worker
        has open now (see :class:`AcceptBalancer`); ``free_slots``,
        ``concurrent_per_worker`` minus those (connections it can still
        take); ``bytes_in`` and ``bytes_out``, bytes received from and sent
        to clients (see the runners); all rolled up by sum. And
        ``accept_backlog``: connections waiting in the listening socket's
        accept queue, which every worker samples about once a second
        (:func:`brim.stats.accept_backlog`; 0 where the kernel does not
        report it, that is outside Linux), rolled up by max."""
        return super().builtin_stats() + [('open_connections', 'sum'), ('free_slots', 'sum'), ('bytes_in', 'sum'),
                                          ('bytes_out', 'sum'), ('accept_backlog', 'max')]

    def balancer(self, eventlet: Any, listener: Any, stats: BucketStats, count: Callable[[], int],
                 socket_class: Optional[type] = None) -> 'AcceptBalancer':
        """The :class:`AcceptBalancer` of a worker of this subserver."""
        shared = getattr(self.server, 'stats', None)
        siblings = []
        if shared is not None:
            for name in shared.layout.buckets.get(self.name, []):
                bucket = shared.bucket(self.name, name)
                if not bucket.same_cells(stats):
                    siblings.append(bucket)
        return AcceptBalancer(eventlet, listener, stats, siblings, count, self.values['concurrent_per_worker'],
                              socket_class)

    def bind(self, inherited: Optional[list] = None) -> None:
        self.load_tls()
        sock = take_listening_socket(inherited or [], self.ip, self.port, socket.SOCK_STREAM)
        if sock is not None:
            sock.listen(self.values['backlog'])  # the new conf's backlog
        else:
            sock = get_listening_tcp_socket(self.ip, self.port, self.values['backlog'], self.values['listen_retry'])
        self.sock = sock
        self.port = sock.getsockname()[1]


class AcceptBalancer:
    """Spreads a stream subserver's connections evenly over its workers.

    Every worker shares one listening socket. Left alone, the kernel wakes
    every worker waiting on it and the first to call ``accept`` wins, so one
    worker can end up with nearly every connection (and one core busy)
    while the others idle. Here each worker publishes how many connections
    it has open (its ``open_connections`` stat, in shared memory), and a
    worker with more open than the least loaded live sibling (``pid`` set)
    waits :data:`BALANCE_STEP` seconds per connection of difference, at most
    :data:`BALANCE_MAX_WAIT`, once a connection is pending, before taking
    it: a less loaded sibling, woken by the same connection, takes it first
    (the least-connections rule of HAProxy's ``leastconn``). A sibling that does
    not take it in time (busy, or hung until the watchdog replaces it)
    costs a new connection that wait and no more; nothing is refused.

    Args:
        eventlet: The eventlet module.
        listener: The worker's green listening socket.
        stats: The worker's own stats bucket.
        siblings: The other workers' buckets of the same subserver.
        count: Returns this worker's open connections.
        limit: ``concurrent_per_worker`` (for ``free_slots``).
        socket_class: The green socket class of accepted connections
            (default :func:`connection_socket_class`).
    """

    def __init__(self, eventlet: Any, listener: Any, stats: BucketStats, siblings: list[BucketStats],
                 count: Callable[[], int], limit: int = 0, socket_class: Optional[type] = None) -> None:
        self.eventlet = eventlet
        self.listener = listener
        self.stats = stats
        self.siblings = siblings
        self.count = count
        self.limit = limit
        self.publishing = True
        self.trampoline = eventlet.hubs.trampoline
        self.notify_opened = eventlet.hubs.notify_opened
        self.green = socket_class or connection_socket_class(eventlet)
        self.publish()

    def publish(self) -> None:
        """Store this worker's open connections where siblings see them,
        and its ``free_slots`` (``concurrent_per_worker`` minus those)."""
        if self.publishing:
            count = self.count()
            self.stats.set('open_connections', count)
            self.stats.set('free_slots', max(self.limit - count, 0))

    def sample(self) -> None:
        """Store the listening socket's accept-queue length in ``accept_backlog``
        (each worker its own copy; the roll-up is their max)."""
        if self.publishing:
            self.stats.set('accept_backlog', accept_backlog(self.listener.fd))

    def stop(self) -> None:
        """Stop publishing (the worker no longer accepts; after a recycle, a
        new worker writes this bucket)."""
        self.publishing = False

    def wait(self) -> float:
        """Seconds to leave a pending connection to less loaded siblings."""
        siblings = self.siblings
        if not siblings:
            return 0.0
        mine = self.count()
        least = mine
        for bucket in siblings:
            if bucket.get('pid'):
                least = min(least, bucket.get('open_connections'))
        return min((mine - least) * BALANCE_STEP, BALANCE_MAX_WAIT)

    def accept(self) -> tuple[Any, Any]:
        """Accept the next connection: ``(green socket, address)``.

        Raises:
            OSError: as ``socket.accept`` does.
        """
        fd = self.listener.fd
        while True:
            wait = self.wait()
            if wait > 0:
                self.trampoline(fd, read=True)  # a connection is pending...
                self.eventlet.sleep(wait)  # ...that a less loaded sibling may take first
            try:
                client, address = fd.accept()
            except BlockingIOError:
                if wait <= 0:
                    self.trampoline(fd, read=True)
                continue
            self.notify_opened(client.fileno())
            return self.green(client), address


class SweptTimeouts:
    """Timeouts of a worker's long socket waits, without a hub timer each.

    Eventlet gives every wait on a socket with a timeout its own hub timer
    (made, pushed on a heap, cancelled): about 1 us a wait, the largest cost
    left on a connection's path (a TCP echo waits once per message). A wait
    of :data:`SWEPT_MIN` seconds or more is instead entered in a dict, and
    one timer callback, running every :data:`SWEEP_TICK` seconds while any
    wait is entered, throws the wait's timeout exception into each green
    thread whose deadline has passed, from the hub, as Eventlet's own timers
    do. Such a timeout fires up to :data:`SWEEP_TICK` late, never early.

    Args:
        hub: The worker's Eventlet hub.
    """

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.waiting: dict[Any, tuple[float, BaseException]] = {}
        self.sweeping = False

    def enter(self, thread: Any, deadline: float, exc: BaseException) -> None:
        """Time out ``thread``'s wait at ``deadline`` (``time.monotonic``) with ``exc``."""
        self.waiting[thread] = (deadline, exc)
        if not self.sweeping:
            self.sweeping = True
            self.hub.schedule_call_global(SWEEP_TICK, self.sweep)

    def sweep(self) -> None:
        """Throw into the waits whose deadline has passed (runs in the hub)."""
        now = time.monotonic()
        waiting = self.waiting
        for thread, entry in list(waiting.items()):
            if entry[0] <= now and waiting.get(thread) is entry:  # still that same wait
                del waiting[thread]
                thread.throw(entry[1])
        if waiting:
            self.hub.schedule_call_global(SWEEP_TICK, self.sweep)
        else:
            self.sweeping = False


#: The shortest socket timeout (seconds) that :class:`SweptTimeouts` handles;
#: shorter ones get Eventlet's own timer.
SWEPT_MIN = 1.0
#: Seconds between sweeps (the most a swept timeout fires late).
SWEEP_TICK = 0.1

_socket_class: list = []


def connection_socket_class(eventlet: Any) -> type:
    """The green socket class of accepted connections in this worker: an
    Eventlet ``GreenSocket`` whose waits of :data:`SWEPT_MIN` seconds or
    more time out through :class:`SweptTimeouts` (same exception,
    ``socket.timeout``, at most :data:`SWEEP_TICK` later), so no hub timer
    is made per wait. Made once per process, for the hub in use."""
    if _socket_class:
        return _socket_class[0]
    swept = SweptTimeouts(eventlet.hubs.get_hub())
    getcurrent = eventlet.getcurrent
    monotonic = time.monotonic

    class ConnectionSocket(eventlet.greenio.GreenSocket):
        """A ``GreenSocket`` whose long waits time out by sweep."""

        def _trampoline(self, fd: Any, read: bool = False, write: bool = False, timeout: Optional[float] = None,
                        timeout_exc: Any = None) -> Any:
            # GreenSocket's one place where a wait (recv, send, ...) meets its timeout.
            if timeout is None or timeout < SWEPT_MIN:
                return super()._trampoline(fd, read=read, write=write, timeout=timeout, timeout_exc=timeout_exc)
            thread = getcurrent()
            swept.enter(thread, monotonic() + timeout, timeout_exc)
            try:
                return super()._trampoline(fd, read=read, write=write, timeout=None, timeout_exc=timeout_exc)
            finally:
                swept.waiting.pop(thread, None)

    _socket_class.append(ConnectionSocket)
    return ConnectionSocket


_counting_class: list = []


def counting_socket_class(eventlet: Any) -> type:
    """A :func:`connection_socket_class` that also counts the bytes its
    ``recv``, ``recv_into``, ``send`` and ``sendall`` move into the cells
    named by its ``byte_cells`` attribute, ``(cells, bytes_in index,
    bytes_out index)`` (None: not counted), which the TCP runner sets per
    connection. One add per call; ``makefile`` and the ``recvfrom``/``sendto``
    family are not counted. Made once per process."""
    if _counting_class:
        return _counting_class[0]
    base: Any = connection_socket_class(eventlet)

    class CountingSocket(base):
        """A connection socket that counts bytes in and out (calling
        GreenSocket's loops itself: no extra call level per recv or send)."""

        byte_cells: Optional[tuple] = None

        def recv(self, bufsize: int, flags: int = 0) -> bytes:
            data = self._recv_loop(self.fd.recv, b'', bufsize, flags)
            counts = self.byte_cells
            if counts is not None:
                cells, index = counts[0], counts[1]
                cells[index] = (cells[index] + len(data)) & MASK
            return data

        def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
            got = self._recv_loop(self.fd.recv_into, 0, buffer, nbytes, flags)
            counts = self.byte_cells
            if counts is not None:
                cells, index = counts[0], counts[1]
                cells[index] = (cells[index] + got) & MASK
            return got

        def send(self, data: Any, flags: int = 0) -> int:
            sent = self._send_loop(self.fd.send, data, flags)  # GreenSocket.sendall calls this
            counts = self.byte_cells
            if counts is not None:
                cells, index = counts[0], counts[2]
                cells[index] = (cells[index] + sent) & MASK
            return sent

    _counting_class.append(CountingSocket)
    return CountingSocket


#: Seconds a worker waits before taking a pending connection, per
#: connection it has open beyond its least loaded sibling.
BALANCE_STEP = 0.001
#: The longest such wait, in seconds.
BALANCE_MAX_WAIT = 0.01


class DatagramSubserver(IPSubserver):
    """IP subserver over UDP."""

    def bind(self, inherited: Optional[list] = None) -> None:
        sock = take_listening_socket(inherited or [], self.ip, self.port, socket.SOCK_DGRAM)
        self.sock = sock or get_listening_udp_socket(self.ip, self.port, self.values['listen_retry'])
        self.port = self.sock.getsockname()[1]


class Runner:
    """What a worker runs in green threads: ``serve()`` until stopped.

    ``serve`` blocks (in its own green thread) until :meth:`stop_accepting`
    has been called and in-flight work has finished.
    """

    def serve(self) -> None:
        """Serve until stopped; returns once in-flight work has finished (runs in its own green thread)."""
        raise NotImplementedError

    eventlet: Any = None
    thread: Any = None  # the green thread running serve()
    sock: Any = None  # this worker's (green) listening socket
    serving = True

    def stop_accepting(self) -> None:
        """Stop the accept (or receive) loop; in-flight work goes on."""
        self.end_accept_loop()

    def end_accept_loop(self) -> bool:
        """End the serving green thread's loop and close this worker's copy
        of the listening socket. Returns False if already done."""
        if not self.serving:
            return False
        self.serving = False
        if self.thread is not None and self.thread is not self.eventlet.getcurrent():
            self.eventlet.kill(self.thread, StopServing())
        close_listener(self.sock)
        return True

    def open_count(self) -> int:
        """Connections (or datagrams) being handled now."""
        return 0

    def sample(self) -> None:
        """Store the stats sampled rather than counted (``accept_backlog``);
        called about once a second by :func:`run_green`."""


class StopServing(Exception):
    """Thrown into a runner's serving green thread to stop it accepting."""


def wait_for_pool(eventlet: Any, pool: Any, connections: Any = ()) -> None:
    """Wait until ``pool`` (if any) has no green thread running and
    ``connections`` is empty, polling every 50 ms.

    Not ``GreenPool.waitall()``: killing the accept loop's green thread can
    leave it a stale wake-up, which ends ``waitall`` early, with requests
    still running (seen under load with Eventlet 0.41): the worker would
    then exit and reset their connections.
    """
    while (pool is not None and pool.running()) or connections:
        eventlet.sleep(0.05)


def close_listener(sock: Any) -> None:
    """Close this worker's copy of a listening socket (the port is released
    once no brimd process holds it; others keep accepting meanwhile)."""
    try:
        sock.close()
    except OSError:
        pass


class HandlerRunner(Runner):
    """Base of the TCP and UDP runners: a receive loop handing each unit
    (connection or datagram) to the handler in its own green thread.

    A handler that raises is logged and replaced by a new instance for later
    units (the original brim's contract). Subclasses define :meth:`receive`
    (block for the next unit, return the args for :meth:`handle_unit`),
    :meth:`handle_unit`, and ``count`` (the stat counted per unit).
    """

    count = ''

    def __init__(self, sub: 'IPSubserver', stats: BucketStats) -> None:
        eventlet = import_eventlet()
        self.eventlet = eventlet
        self.sub = sub
        self.stats = stats
        self.sock = eventlet.greenio.GreenSocket(sub.sock)
        self.pool = eventlet.GreenPool(sub.values['concurrent_per_worker'])
        self.loaded = sub.apps[0]
        self.handler = self.new_handler()
        self.thread: Any = None
        self.serving = True

    def new_handler(self) -> Any:
        """A new instance of the handler class: ``cls(section, parsed_conf)``."""
        return self.loaded.cls(self.loaded.section, self.loaded.parsed_conf)

    def receive(self) -> tuple:
        """Block until the next unit arrives.

        Returns:
            The arguments for :meth:`handle_unit` after the handler.

        Raises:
            StopServing: thrown in by a graceful stop.
            OSError: a failed accept or receive (logged, and the loop goes on).
        """
        raise NotImplementedError

    def handle_unit(self, handler: Any, *unit: Any) -> None:
        """Serve one unit with ``handler`` (in its own green thread).

        Exceptions propagate: the runner logs them and replaces the handler.
        """
        raise NotImplementedError

    def serve(self) -> None:
        """Receive units and hand each to :meth:`handle_unit` in a green thread
        of the pool (counting ``count`` per unit) until stopped; then wait for
        those in progress.
        """
        self.thread = self.eventlet.getcurrent()
        try:
            while self.serving:
                try:
                    unit = self.receive()
                except StopServing:
                    break
                except OSError as err:
                    if not self.serving:
                        break
                    self.sub.logger.warning('%s failed: %s', self.receive.__name__, err)
                    self.eventlet.sleep(0.01)
                    continue
                self.stats.incr(self.count)
                self.pool.spawn_n(self._handle, unit)
        except StopServing:
            pass
        wait_for_pool(self.eventlet, self.pool)

    def _handle(self, unit: tuple) -> None:
        handler = self.handler
        try:
            self.handle_unit(handler, *unit)
        except Exception:
            self.replace_handler(handler)

    def replace_handler(self, handler: Any) -> None:
        """Log the exception being handled (raised by ``handler``) and, unless
        another unit has already done so, make a new handler instance for what
        comes next (if that fails too, it is logged and the old one stays)."""
        self.sub.logger.error('%s raised: %s; using a new instance for what comes next',
                              self.loaded.section, sysloggable_excinfo(*sys.exc_info()))
        if handler is self.handler:
            try:
                self.handler = self.new_handler()
            except Exception:
                self.sub.logger.error('cannot make a new %s: %s', self.loaded.section,
                                      sysloggable_excinfo(*sys.exc_info()))

    def open_count(self) -> int:
        return self.pool.running()


class HandlerSubserver(IPSubserver):
    """A TCP or UDP subserver: one handler class, named by its own ``call =``,
    run by :attr:`runner`, whose ``count`` stat is counted per unit."""

    runner: type[HandlerRunner] = HandlerRunner

    def app_specs(self) -> list[tuple[str, str]]:
        return [(self.name, self.values['call'])]

    def builtin_stats(self) -> list[tuple[str, str]]:
        return super().builtin_stats() + [(self.runner.count, 'sum')]

    def describe(self) -> str:
        return '%s, call: %s' % (super().describe(), self.values['call'])

    def unit_stat(self) -> str:
        return self.runner.count

    def make_runner(self, index: int, stats: BucketStats) -> Runner:
        return self.runner(self, stats)


def run_green(runners: list[Runner], logger: logging.Logger, parent_pid: Optional[int] = None,
              foreground: bool = False, graceful_timeout: float = 0.0, worker_timeout: float = 0.0) -> None:
    """Run ``runners`` in green threads until they finish.

    SIGHUP: every runner stops accepting and finishes in-flight work, then
    this returns; what is still open ``graceful_timeout`` seconds later is
    cut (logged) and the process exits. SIGTERM (and SIGINT in the
    foreground): exit now. SIGUSR1: log files reopen. Workers
    (``parent_pid`` given) also exit when their supervisor goes away.
    A green thread calls :func:`brim.service.heartbeat` every second (every
    quarter of ``worker_timeout`` if that is shorter), so the supervisor
    sees a blocked event loop.

    Args:
        runners: From :meth:`Subserver.make_runner`.
        logger: Where stop lines go.
        parent_pid: The supervisor's pid to watch, or None.
        foreground: True for ``brimd`` without a command.
        graceful_timeout: Seconds; 0 waits for ever.
        worker_timeout: Seconds; sets how often the heartbeat ticks.
    """
    eventlet = import_eventlet()
    from eventlet.green import select as green_select

    pending: list[int] = []
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    def record(signum: int, frame: object) -> None:
        pending.append(signum)

    def reopen(signum: int, frame: object) -> None:
        reopen_log_files()  # only sets flags: safe in a handler

    signal.signal(signal.SIGHUP, record)
    signal.signal(signal.SIGUSR1, reopen)
    if foreground:
        signal.signal(signal.SIGTERM, record)
        signal.signal(signal.SIGINT, record)
    else:
        # Immediate: the default action, which even a hub blocked by an app obeys.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    threads = [eventlet.spawn(runner.serve) for runner in runners]
    stopping: list[int] = []
    tick = min(1.0, worker_timeout / 4) if worker_timeout else 1.0

    def cut_off() -> None:
        eventlet.sleep(graceful_timeout)
        left = sum(runner.open_count() for runner in runners)
        logger.error('graceful_timeout (%g s) has passed with %d connection%s still open; cutting %s off',
                     graceful_timeout, left, '' if left == 1 else 's', 'it' if left == 1 else 'them')
        flush_access_logs()
        logging.shutdown()
        os._exit(1)

    def watch() -> None:
        while True:
            heartbeat()
            for runner in runners:
                runner.sample()
            green_select.select([wake_r], [], [], tick)
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            if parent_pid and os.getppid() != parent_pid:
                logger.error('supervisor (pid %d) went away; exiting', parent_pid)
                flush_access_logs()
                logging.shutdown()
                os._exit(1)
            while pending:
                signum = pending.pop(0)
                if signum == signal.SIGHUP and not stopping:
                    stopping.append(signum)
                    logger.info('SIGHUP: no longer accepting; finishing in-flight work')
                    for runner in runners:
                        runner.stop_accepting()
                    if graceful_timeout:
                        eventlet.spawn_n(cut_off)
                elif signum in (signal.SIGTERM, signal.SIGINT):
                    logger.info('%s: exiting now', signal.Signals(signum).name)
                    flush_access_logs()
                    logging.shutdown()
                    os._exit(0)

    eventlet.spawn_n(watch)
    for thread in threads:
        try:
            thread.wait()
        except Exception:
            logger.exception('runner failed')
    flush_access_logs()
    signal.set_wakeup_fd(-1)


def now() -> int:
    """Integer Unix time, as stats store times."""
    return int(time.time())
