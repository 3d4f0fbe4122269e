"""Functions for background services: sockets, privileges, stdio, supervision.

:func:`sustain_workers` is brimd's supervisor: it forks workers and keeps
them running. Its loop reads as steps: wait for a signal (with a timeout,
never a blocking ``os.wait()``, which since PEP 475 a signal no longer
interrupts), handle recorded signals, reap every exited child with
``waitpid(-1, WNOHANG)`` and log its decoded status, then the watchdog
(children whose :func:`heartbeat` stopped), recycling (one worker at a time,
its replacement serving first), restoring the worker count (throttled, with
exponential backoff for crash loops), and a check that the parent is alive.

Invariants: signal handlers only record the signal number (and wake the loop
through :func:`signal.set_wakeup_fd`); nothing is logged inside a handler.
Nothing here imports Eventlet: these run in the main process and the
supervisors, which must stay fork-safe.
"""

from __future__ import annotations

import errno
import grp
import logging
import mmap
import os
import pwd
import random
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Callable, Optional

from brim.errors import StartupError
from brim.log import sysloggable_excinfo

#: Exit status of a worker that could not boot (EX_CONFIG, sysexits.h):
#: the supervisor logs it and does not restart that worker.
EXIT_BOOT_FAILED = 78


def signum2str(signum: int) -> str:
    """Return the name of a signal number, e.g. ``'SIGHUP'`` for 1.

    Args:
        signum: The signal number (an ``int`` or :class:`signal.Signals`).

    Returns:
        The ``str`` name, or ``'UNKNOWN'`` for a number that is no signal;
        never raises.

    >>> signum2str(1)
    'SIGHUP'
    """
    try:
        return signal.Signals(signum).name
    except ValueError:
        return 'UNKNOWN'


def describe_status(status: int) -> str:
    """Decode a ``waitpid`` status: ``'exit status 1'`` or ``'signal SIGKILL'``."""
    if os.WIFSIGNALED(status):
        return 'signal %s' % signum2str(os.WTERMSIG(status))
    if os.WIFEXITED(status):
        return 'exit status %d' % os.WEXITSTATUS(status)
    return 'status %d' % status


def droppriv(user: Optional[str], group: Optional[str] = None, umask: int = 0o022) -> None:
    """Drop to ``user``/``group``, set ``umask``, start a session, cd to ``/``.

    Args:
        user: User name, or None to stay the current user.
        group: Group name, or None for the user's primary group.
        umask: The process umask (permission bits, e.g. ``0o022``).

    Raises:
        StartupError: if the user or group does not exist or the switch is
            not permitted.
    """
    uid = gid = None
    try:
        if user:
            entry = pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        if group:
            gid = grp.getgrnam(group).gr_gid
    except KeyError as err:
        raise StartupError('cannot drop privileges: no such user or group %s' % err) from None
    try:
        if gid is not None and gid != os.getegid():
            if os.geteuid() == 0:
                os.setgroups([])
            os.setgid(gid)
        if uid is not None and uid != os.geteuid():
            if user and os.geteuid() == 0:
                os.initgroups(user, gid if gid is not None else os.getgid())
            os.setuid(uid)
    except OSError as err:
        raise StartupError('cannot drop privileges to user %s group %s: %s' % (user, group, err.strerror)) from None
    os.umask(umask)
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    os.chdir('/')


class _LineWriter:
    """A text stream that hands each whole line to a function."""

    def __init__(self, func: Callable[[str], None]) -> None:
        self.func = func
        self.buffer = ''

    def write(self, text: str) -> int:
        self.buffer += text
        while '\n' in self.buffer:
            line, self.buffer = self.buffer.split('\n', 1)
            if line:
                self.func(line)
        return len(text)

    def flush(self) -> None:
        if self.buffer:
            line, self.buffer = self.buffer, ''
            self.func(line)

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(errno.EBADF, 'captured stream has no file descriptor')


def capture_exceptions_stdout_stderr(
        exceptions: Optional[Callable[[type, BaseException, Optional[TracebackType]], None]] = None,
        stdout_func: Optional[Callable[[str], None]] = None,
        stderr_func: Optional[Callable[[str], None]] = None) -> None:
    """Send uncaught exceptions and stdout/stderr text to functions.

    File descriptors 1 and 2 are pointed at ``/dev/null`` so nothing reaches
    a terminal that is gone; ``sys.stdout``/``sys.stderr`` become line
    writers calling ``stdout_func(line)``/``stderr_func(line)``.

    Args:
        exceptions: Called as ``(exctype, value, traceback)`` for uncaught
            exceptions (``sys.excepthook``).
        stdout_func: Called with each line printed to stdout.
        stderr_func: Called with each line printed to stderr.
    """
    if exceptions:
        sys.excepthook = exceptions
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    if stdout_func:
        sys.stdout = _LineWriter(stdout_func)
    if stderr_func:
        sys.stderr = _LineWriter(stderr_func)


def _bind_address(ip: str, port: int, socktype: int) -> tuple[int, tuple]:
    """Return ``(family, sockaddr)`` for ``ip`` (``*`` = every address)."""
    if ip == '*':
        if socket.has_ipv6:
            try:
                probe = socket.socket(socket.AF_INET6, socktype)
                probe.close()
                return socket.AF_INET6, ('::', port, 0, 0)
            except OSError:
                pass
        return socket.AF_INET, ('0.0.0.0', port)
    family, _, _, _, sockaddr = socket.getaddrinfo(ip, port, 0, socktype, 0, socket.AI_PASSIVE)[0]
    return family, sockaddr


def _listening_socket(ip: str, port: int, socktype: int, retry: float,
                      prepare: Callable[[socket.socket], None]) -> socket.socket:
    try:
        family, address = _bind_address(ip, port, socktype)
    except socket.gaierror as err:
        raise StartupError('cannot bind %s:%s: %s' % (ip, port, err.strerror)) from None
    deadline = time.monotonic() + retry
    while True:
        sock = socket.socket(family, socktype)
        try:
            if socktype == socket.SOCK_STREAM:
                # For TCP, only lets us bind over TIME_WAIT connections. On
                # UDP it would let two servers share a port unawares: not set.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and ip == '*':
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            sock.bind(address)
            prepare(sock)
            sock.set_inheritable(True)
            return sock
        except OSError as err:
            sock.close()
            if err.errno != errno.EADDRINUSE or time.monotonic() >= deadline:
                shown = '[%s]' % ip if ':' in ip else ip
                suffix = ' (retried for %g seconds)' % retry if err.errno == errno.EADDRINUSE and retry else ''
                raise StartupError('cannot bind %s:%s: %s%s' % (shown, port, err.strerror, suffix)) from None
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


def get_listening_tcp_socket(ip: str, port: int, backlog: int = 4096, retry: float = 30) -> socket.socket:
    """Return a plain TCP socket bound to ``ip:port`` and listening.

    Args:
        ip: ``*`` for every address (dual-stack IPv6 where available), an
            IPv4/IPv6 address or a host name.
        port: The TCP port (0 picks a free one).
        backlog: The listen backlog (connections queued by the kernel).
        retry: Seconds to keep retrying while the address is in use
            (every 0.5 s); 0 tries once.

    Returns:
        A blocking :class:`socket.socket` with ``SO_REUSEADDR``, inheritable
        by children (brimd forks workers that accept on it).

    Raises:
        StartupError: naming the address if it cannot be bound.
    """
    return _listening_socket(ip, port, socket.SOCK_STREAM, retry, lambda s: s.listen(backlog))


def take_listening_socket(sockets: list[socket.socket], ip: str, port: int,
                          socktype: int) -> Optional[socket.socket]:
    """Remove from ``sockets`` and return the one already bound to ``ip:port``.

    For taking over the sockets of a running server (``brimd restart``),
    so the port is never closed with connections queued on it.

    Args:
        sockets: Bound sockets to choose from.
        ip, port: As for :func:`get_listening_tcp_socket` (port 0 never matches).
        socktype: ``socket.SOCK_STREAM`` or ``socket.SOCK_DGRAM``.
    """
    if not port:
        return None
    try:
        family, address = _bind_address(ip, port, socktype)
        wanted = socket.inet_pton(family, address[0])
    except (OSError, UnicodeError):
        return None
    for sock in sockets:
        try:
            if sock.family != family or sock.type != socktype:
                continue
            bound = sock.getsockname()
            if bound[1] == port and socket.inet_pton(family, bound[0].split('%')[0]) == wanted:
                sockets.remove(sock)
                return sock
        except OSError:
            continue
    return None


def get_listening_udp_socket(ip: str, port: int, retry: float = 30) -> socket.socket:
    """Return a plain UDP socket bound to ``ip:port``.

    Args:
        ip: ``*`` for every address (dual-stack IPv6 where available), an
            IPv4/IPv6 address or a host name.
        port: The UDP port (0 picks a free one).
        retry: Seconds to keep retrying while the address is in use
            (every 0.5 s); 0 tries once.

    Returns:
        A blocking :class:`socket.socket` (no ``SO_REUSEADDR``: two servers
        never share a UDP port unawares), inheritable by children.

    Raises:
        StartupError: naming the address if it cannot be bound.
    """
    return _listening_socket(ip, port, socket.SOCK_DGRAM, retry, lambda s: None)


#: Seconds a child must run before its exit stops counting as part of a crash loop.
CRASH_LOOP_WINDOW = 10.0
#: The longest wait, in seconds, between restarts of a crash-looping child.
MAX_BACKOFF = 60.0
#: Seconds a recycling replacement may take to report it is serving before
#: the old child is retired anyway.
REPLACEMENT_WAIT = 60.0

_HEARTBEAT: list = []  # [(cells, cell)] in a sustained child


def heartbeat() -> None:
    """Tell this process's supervisor that it is alive (its loop is running).

    A child of :func:`sustain_workers` that calls this at least once is
    watched: if it then stops calling it for ``worker_timeout`` seconds, its
    supervisor kills and replaces it. Its first call also means "serving"
    (a recycling replacement is waited for until then). Outside a sustained
    child this does nothing. Cost: one 8-byte store in shared memory.
    """
    if _HEARTBEAT:
        cells, cell = _HEARTBEAT[0]
        cells[cell] = int(time.monotonic() * 1000) or 1


def exit_code(status: int) -> int:
    """A ``waitpid`` status as a shell would show it: the exit status, or
    128 plus the signal number for a child killed by a signal."""
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    if os.WIFEXITED(status):
        return os.WEXITSTATUS(status)
    return status


def rss_bytes(pid: int) -> Optional[int]:
    """The resident set size of ``pid`` in bytes (from ``/proc/PID/statm``), or None."""
    try:
        with open('/proc/%d/statm' % pid, 'rb') as fp:
            fields = fp.read().split()
        return int(fields[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Recycler:
    """When to retire a healthy worker gracefully (capacity-safe recycling).

    Each limit is 0 for off. A worker is retired once it has run
    ``min_lifetime`` seconds and has served its request limit
    (``max_requests`` plus a random 0 to ``max_requests_jitter``), lived its
    lifetime limit (``max_lifetime`` plus a random 0 to
    ``max_lifetime_jitter`` seconds), or grown past ``max_rss`` bytes
    resident. Limits are drawn for each worker when it starts.

    Args:
        served: ``served(index)`` returns the count of requests (or
            connections, datagrams) that worker index has served; read at
            start and again to see how many this worker served.
    """

    served: Callable[[int], int]
    max_requests: int = 0
    max_requests_jitter: int = 0
    max_lifetime: float = 0.0
    max_lifetime_jitter: float = 0.0
    max_rss: int = 0
    min_lifetime: float = 0.0

    def active(self) -> bool:
        """True if any limit (``max_requests``, ``max_lifetime``, ``max_rss``) is set."""
        return bool(self.max_requests or self.max_lifetime or self.max_rss)

    def limits(self, index: int) -> tuple[int, int, float]:
        """``(served at start, request limit, lifetime limit)`` for a new worker."""
        requests = self.max_requests + random.randint(0, self.max_requests_jitter) if self.max_requests else 0
        lifetime = self.max_lifetime + random.uniform(0, self.max_lifetime_jitter) if self.max_lifetime else 0.0
        return self.served(index), requests, lifetime

    def reason(self, child: '_Child', now: float) -> Optional[str]:
        """Why ``child`` should be retired now, or None."""
        age = now - child.started
        if age < self.min_lifetime:
            return None
        if child.max_requests:
            served = (self.served(child.index) - child.base_served) & ((1 << 64) - 1)
            if served >= child.max_requests:
                return 'served %d requests (max_requests)' % served
        if child.max_lifetime and age >= child.max_lifetime:
            return 'ran %.0f seconds (max_lifetime)' % age
        if self.max_rss:
            rss = rss_bytes(child.pid)
            if rss is not None and rss > self.max_rss:
                return 'uses %.1f MiB resident (max_rss %.0f MiB)' % (rss / 2 ** 20, self.max_rss / 2 ** 20)
        return None


class _Child:
    """A forked child, as its supervisor tracks it."""

    __slots__ = ('pid', 'index', 'slot', 'started', 'retiring', 'hup_at', 'killed', 'base_served',
                 'max_requests', 'max_lifetime')

    def __init__(self, pid: int, index: int, slot: int, started: float) -> None:
        self.pid = pid
        self.index = index
        self.slot = slot
        self.started = started
        self.retiring = ''  # why it is being recycled
        self.hup_at: Optional[float] = None
        self.killed = ''  # why its supervisor killed it
        self.base_served = 0
        self.max_requests = 0
        self.max_lifetime = 0.0


class _Bucket:
    """What a supervisor remembers about one index across its children."""

    __slots__ = ('restarts', 'recycles', 'quick_exits', 'next_start', 'last_exit', 'backoff')

    def __init__(self) -> None:
        self.restarts = 0
        self.recycles = 0
        self.quick_exits = 0
        self.next_start = 0.0
        self.last_exit = 0
        self.backoff = 0.0


#: Called as ``status(index, pid, restarts, recycles, last_exit, backoff)``
#: whenever one of them changes for an index (pid 0: none running).
StatusHook = Callable[[int, int, int, int, int, float], None]


class Supervisor:
    """Forks ``workers_desired`` children running ``worker_func(index)`` and
    keeps them running until HUP or TERM; see :func:`sustain_workers` for
    the arguments.

    Each pass of :meth:`run`: handle recorded signals, reap exited children
    (logging each status), then either enforce the graceful deadline
    (stopping) or run the watchdog, recycle one worker if due, and restore
    missing children; then call ``on_pass`` and sleep until a signal, a
    watched descriptor, or the next deadline.
    """

    def __init__(self, workers_desired: int, worker_func: Callable[[int], Optional[int]],
                 logger: Optional[logging.Logger] = None, name: str = 'worker',
                 respawn_interval: float = 1.0, on_stop: Optional[Callable[[int], None]] = None,
                 wait_on_hup: bool = True, on_spawn: Optional[Callable[[int], None]] = None,
                 watch_parent: bool = True, label: Optional[Callable[[int], str]] = None,
                 graceful_timeout: float = 0.0, worker_timeout: float = 0.0,
                 recycler: Optional[Recycler] = None, status: Optional[StatusHook] = None,
                 on_pass: Optional[Callable[[], None]] = None,
                 readers: Optional[dict[int, Callable[[], None]]] = None,
                 on_usr1: Optional[Callable[[], None]] = None, max_backoff: float = MAX_BACKOFF,
                 kill_margin: float = 0.0) -> None:
        self.workers_desired = workers_desired
        self.worker_func = worker_func
        self.logger = logger or logging.getLogger('brim.service')
        self.name = name
        self.respawn_interval = respawn_interval
        self.on_stop = on_stop
        self.on_spawn = on_spawn
        self.wait_on_hup = wait_on_hup
        self.watch_parent = watch_parent
        self.label = label or (lambda index: '%s %d' % (name, index))
        self.graceful_timeout = graceful_timeout
        self.kill_margin = kill_margin
        self.worker_timeout = worker_timeout
        self.recycler = recycler if recycler is not None and recycler.active() else None
        self.status = status
        self.on_pass = on_pass
        self.readers = readers or {}
        self.on_usr1 = on_usr1
        self.max_backoff = max_backoff
        self.children: dict[int, _Child] = {}  # pid -> child
        self.buckets = [_Bucket() for _ in range(max(workers_desired, 1))]
        self.failed: set[int] = set()
        self.pending: list[int] = []
        self.stopping: Optional[int] = None
        self.stop_at = 0.0
        self.last_spawn = 0.0
        self.initial_done = False
        self.recycling: Optional[tuple[_Child, _Child]] = None  # (old, replacement)
        self.parent = os.getppid()
        #: The longest sleep between passes (seconds); lower it to poll ``on_pass`` faster.
        self.max_wait = 1.0
        self._wake_r = self._wake_w = -1
        # One heartbeat cell per slot: a slot per worker plus one for a
        # recycling replacement. Shared with the children (forked after).
        self._beats_mmap = mmap.mmap(-1, 8 * (max(workers_desired, 1) + 1))
        self.beats = memoryview(self._beats_mmap).cast('Q')

    # -- signals --------------------------------------------------------------

    _SIGNALS = (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR1)

    def _record(self, signum: int, frame: object) -> None:
        self.pending.append(signum)

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in self._SIGNALS:
            signal.signal(signum, self._record)

    def _reset_in_child(self) -> None:
        signal.set_wakeup_fd(-1)
        for signum in self._SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        # Until the child sets its own: log rotation must never kill it.
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        os.close(self._wake_r)
        os.close(self._wake_w)
        for fd in self.readers:
            try:
                os.close(fd)
            except OSError:
                pass

    # -- steps ----------------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Sleep until a signal or a watched descriptor is ready, or ``timeout`` seconds pass."""
        if self.pending:
            return
        try:
            ready = select.select([self._wake_r] + list(self.readers), [], [], max(0.0, timeout))[0]
        except InterruptedError:
            ready = []
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass
        for fd in ready:
            callback = self.readers.get(fd)
            if callback is not None:
                try:
                    callback()
                except Exception:
                    self.logger.error('%s: %s', self.name, sysloggable_excinfo(*sys.exc_info()))

    def handle_signals(self) -> None:
        """Run ``handle_<signal>`` for each signal recorded since the last pass, in order."""
        while self.pending:
            signum = self.pending.pop(0)
            handler = getattr(self, 'handle_' + signum2str(signum).lower(), None)
            if handler:
                handler()

    def handle_sighup(self) -> None:
        """HUP: stop gracefully (see :meth:`stop`)."""
        self.stop(signal.SIGHUP)

    def handle_sigterm(self) -> None:
        """TERM (and INT): stop at once (see :meth:`stop`)."""
        self.stop(signal.SIGTERM)

    handle_sigint = handle_sigterm

    def handle_sigchld(self) -> None:
        """CHLD: nothing; every pass reaps (:meth:`reap`)."""
        pass  # reap() runs every pass

    def handle_sigusr1(self) -> None:
        """USR1 (log rotation): call ``on_usr1``, then relay USR1 to every child."""
        if self.on_usr1:
            self.on_usr1()
        self.relay(signal.SIGUSR1)

    def stop(self, signum: int) -> None:
        """Begin stopping: HUP gracefully, TERM at once (relayed to every child)."""
        if self.stopping == signal.SIGTERM or self.stopping == signum:
            return
        self.stopping = signum
        self.stop_at = time.monotonic()
        self.logger.info('%s: %s received; relaying to %d children', self.name,
                         signum2str(signum), len(self.children))
        if self.on_stop:
            self.on_stop(signum)
        self.relay(signum)

    def relay(self, signum: int) -> None:
        """Send ``signum`` to every child (those already gone are skipped)."""
        for pid in list(self.children):
            self._kill(pid, signum)

    @staticmethod
    def _kill(pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def _tell_status(self, index: int) -> None:
        if self.status is None:
            return
        bucket = self.buckets[index]
        pid = max((c.pid for c in self.children.values() if c.index == index and not c.retiring), default=0)
        self.status(index, pid, bucket.restarts, bucket.recycles, bucket.last_exit, bucket.backoff)

    def reap(self) -> None:
        """Collect every exited child; log how it ended; schedule its restart."""
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if not pid:
                return
            child = self.children.pop(pid, None)
            if child is None:
                continue
            self.beats[child.slot] = 0
            self._exited(child, status)

    def _exited(self, child: _Child, status: int) -> None:
        now = time.monotonic()
        how = describe_status(status)
        label = self.label(child.index)
        bucket = self.buckets[child.index]
        bucket.last_exit = exit_code(status)
        ran = now - child.started
        if self.recycling and child in self.recycling:
            old, new = self.recycling
            self.recycling = None
            if child is new:
                self.logger.error('%s (pid %d), the replacement for pid %d, exited before serving: %s; '
                                  'pid %d serves on', label, child.pid, old.pid, how, old.pid)
                old.retiring = ''
                self._schedule(child, bucket, now, ran)
            elif old.hup_at is None:
                bucket.restarts += 1
                self.logger.error('%s (pid %d) exited before it was retired: %s; its replacement (pid %d) '
                                  'serves on', label, child.pid, how, new.pid)
            else:
                bucket.recycles += 1
                self.logger.info('%s (pid %d) retired (%s): %s', label, child.pid, old.retiring, how)
        elif self.stopping is not None:
            self.logger.info('%s (pid %d) exited: %s', label, child.pid, how)
        elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_BOOT_FAILED:
            self.failed.add(child.index)
            self.logger.critical('%s (pid %d) could not start (%s); not restarting it: '
                                 'fix the cause and restart brimd', label, child.pid, how)
        else:
            why = ' (%s)' % child.killed if child.killed else ''
            delay = self._schedule(child, bucket, now, ran)
            if bucket.backoff:
                self.logger.error('%s (pid %d) exited after %.1f s: %s%s; crash loop (%d quick exits in a row): '
                                  'restarting it in %g s', label, child.pid, ran, how, why, bucket.quick_exits, delay)
            else:
                self.logger.error('%s (pid %d) exited: %s%s; restarting it', label, child.pid, how, why)
        self._tell_status(child.index)

    def _schedule(self, child: _Child, bucket: _Bucket, now: float, ran: float) -> float:
        """Count an unplanned exit; set when the index may start again (exponential backoff)."""
        bucket.restarts += 1
        bucket.quick_exits = bucket.quick_exits + 1 if ran < CRASH_LOOP_WINDOW else 1
        delay = min(self.max_backoff, self.respawn_interval * 2 ** min(bucket.quick_exits - 1, 30))
        bucket.next_start = now + delay
        bucket.backoff = delay if delay > self.respawn_interval else 0.0
        return delay

    def restore(self) -> None:
        """Fork missing children: all at once at first, then one per
        ``respawn_interval``, each no sooner than its backoff allows."""
        running = {child.index for child in self.children.values()}
        now = time.monotonic()
        for index in range(self.workers_desired):
            if index in running or index in self.failed or now < self.buckets[index].next_start:
                continue
            if self.initial_done and now - self.last_spawn < self.respawn_interval:
                return
            self.spawn(index)
            self.last_spawn = now

    def _free_slot(self) -> int:
        used = {child.slot for child in self.children.values()}
        return min(slot for slot in range(len(self.beats)) if slot not in used)

    def spawn(self, index: int) -> _Child:
        """Fork one child running ``worker_func(index)``."""
        if self.on_spawn:
            self.on_spawn(index)
        slot = self._free_slot()
        self.beats[slot] = 0
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                self._reset_in_child()
                _HEARTBEAT[:] = [(self.beats, slot)]
                result = self.worker_func(index)
                status = result if isinstance(result, int) else 0
            except SystemExit as err:
                status = err.code if isinstance(err.code, int) else 1
            except BaseException:
                try:
                    self.logger.exception('%s crashed', self.label(index))
                except BaseException:
                    pass
                status = 1
            finally:
                try:
                    logging.shutdown()
                except BaseException:
                    pass
                os._exit(status)
        child = _Child(pid, index, slot, time.monotonic())
        if self.recycler is not None:
            child.base_served, child.max_requests, child.max_lifetime = self.recycler.limits(index)
        self.children[pid] = child
        self.buckets[index].backoff = 0.0
        self._tell_status(index)
        return child

    def watchdog(self, now: float) -> None:
        """Kill each child whose heartbeat is older than ``worker_timeout``."""
        if not self.worker_timeout:
            return
        now_ms = int(now * 1000)
        for child in list(self.children.values()):
            beat = self.beats[child.slot]
            if not beat or child.killed:
                continue
            stuck = (now_ms - beat) / 1000.0
            if stuck > self.worker_timeout:
                child.killed = 'stuck for %.1f s, worker_timeout %g s' % (stuck, self.worker_timeout)
                self.logger.error('%s (pid %d) is stuck: its event loop has not run for %.1f s '
                                  '(worker_timeout %g s); killing it', self.label(child.index), child.pid,
                                  stuck, self.worker_timeout)
                self._kill(child.pid, signal.SIGKILL)

    def recycle(self, now: float) -> None:
        """Retire at most one worker at a time, its replacement serving first."""
        if self.recycling:
            old, new = self.recycling
            if old.hup_at is None and (self.beats[new.slot] or now - new.started > REPLACEMENT_WAIT):
                old.hup_at = now
                if self.recycler is not None:  # count from here: the old one served until now
                    new.base_served = self.recycler.served(new.index)
                self.logger.info('%s (pid %d) is serving; retiring pid %d gracefully',
                                 self.label(new.index), new.pid, old.pid)
                self._kill(old.pid, signal.SIGHUP)
            elif old.hup_at is not None and self.graceful_timeout and not old.killed \
                    and now - old.hup_at > self.graceful_timeout + self.kill_margin:
                old.killed = 'graceful_timeout'
                self.logger.error('%s (pid %d) still running past graceful_timeout (%g s) after SIGHUP; killing it',
                                  self.label(old.index), old.pid, self.graceful_timeout)
                self._kill(old.pid, signal.SIGKILL)
            return
        if self.recycler is None:
            return
        for child in list(self.children.values()):
            if child.killed or now < self.buckets[child.index].next_start:
                continue
            reason = self.recycler.reason(child, now)
            if reason:
                child.retiring = reason
                self.logger.info('%s (pid %d) %s; starting its replacement', self.label(child.index),
                                 child.pid, reason)
                self.recycling = (child, self.spawn(child.index))
                return

    def enforce_graceful_timeout(self, now: float) -> None:
        """After HUP, kill what is still running ``graceful_timeout`` seconds later."""
        if self.stopping != signal.SIGHUP or not self.graceful_timeout or \
                now - self.stop_at < self.graceful_timeout + self.kill_margin:
            return
        for child in list(self.children.values()):
            if not child.killed:
                child.killed = 'graceful_timeout'
                self.logger.error('%s (pid %d) still running past graceful_timeout (%g s) after SIGHUP; killing it',
                                  self.label(child.index), child.pid, self.graceful_timeout)
                self._kill(child.pid, signal.SIGKILL)

    def parent_alive(self) -> bool:
        """False once the parent has exited (when ``watch_parent`` is set), else True."""
        return not self.watch_parent or os.getppid() == self.parent

    def next_wait(self, now: float) -> float:
        """Seconds until something is due (at most :attr:`max_wait`)."""
        wait = self.max_wait
        if self.worker_timeout:
            wait = min(wait, self.worker_timeout / 4)
        if self.recycling:
            wait = min(wait, 0.05)
        if self.stopping == signal.SIGHUP and self.graceful_timeout:
            wait = min(wait, self.stop_at + self.graceful_timeout + self.kill_margin - now)
        pending = [self.buckets[i].next_start for i in range(self.workers_desired)
                   if i not in self.failed and not any(c.index == i for c in self.children.values())]
        if pending and self.initial_done:
            wait = min(wait, max(min(pending), self.last_spawn + self.respawn_interval) - now)
        return max(0.01, wait)

    # -- loop -----------------------------------------------------------------

    def run(self) -> None:
        """Supervise until HUP or TERM (the loop described above); returns then.

        After TERM, waits up to 5 seconds for the children to exit, then kills
        the rest with SIGKILL. After HUP, returns once every child has exited
        (or at once if ``wait_on_hup`` is False); children still running past
        ``graceful_timeout`` (plus ``kill_margin``) are killed.
        """
        self._install_signals()
        self.initial_done = False
        try:
            self.restore()
            self.initial_done = True
            self.last_spawn = time.monotonic()
            while True:
                self.handle_signals()
                self.reap()
                now = time.monotonic()
                if self.stopping is not None:
                    if self.stopping == signal.SIGTERM or not self.wait_on_hup or not self.children:
                        break
                    self.enforce_graceful_timeout(now)
                else:
                    self.watchdog(now)
                    self.recycle(now)
                    self.restore()
                    if not self.parent_alive():
                        self.logger.error('%s: parent process exited; stopping', self.name)
                        self.stop(signal.SIGTERM)
                        continue
                if self.on_pass:
                    self.on_pass()
                self.wait(self.next_wait(time.monotonic()))
            if self.stopping == signal.SIGTERM:
                self._await_children(5.0)
        finally:
            signal.set_wakeup_fd(-1)

    def _await_children(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.children and time.monotonic() < deadline:
            self.reap()
            if self.children:
                time.sleep(0.05)
        for pid in list(self.children):
            self._kill(pid, signal.SIGKILL)
        # SIGKILL is not instant: reap (and log) the killed ones, bounded.
        deadline = time.monotonic() + 1.0
        self.reap()
        while self.children and time.monotonic() < deadline:
            time.sleep(0.01)
            self.reap()


def sustain_workers(workers_desired: int, worker_func: Callable[[int], Optional[int]],
                    logger: Optional[logging.Logger] = None, **kwargs: object) -> None:
    """Start ``workers_desired`` subprocesses and keep them running.

    Each child runs ``worker_func(index)`` (index 0 to workers_desired - 1)
    and exits with its int result (0 otherwise; 1 if it raises). A child
    that exits is forked again with the same index and its exit status or
    signal is logged; one exiting with :data:`EXIT_BOOT_FAILED` is not
    restarted. Restarts come at most once per ``respawn_interval`` (1 s);
    a child that keeps exiting within :data:`CRASH_LOOP_WINDOW` seconds of
    starting waits twice as long each time (1, 2, 4 ... up to
    ``max_backoff``, 60 s), and the log says so.

    Returns after SIGHUP (relayed to the children; waits for them, killing
    those still running ``graceful_timeout`` (plus ``kill_margin``)
    seconds later) or
    SIGTERM/SIGINT (relayed; children still running after 5 s are killed).
    SIGUSR1 calls ``on_usr1`` and is relayed (children start with it
    ignored, until they set their own handler).

    If ``workers_desired`` is 0, ``worker_func(0)`` is called in this process
    ("inproc" mode, for debugging) and its return ends the call.

    Args:
        workers_desired: How many children to keep running.
        worker_func: Called in each child with its index.
        logger: Where exits are logged (default ``brim.service``).
        kwargs: ``name`` (shown in log lines), ``label(index)`` (how a
            child is named in log lines, default ``'<name> <index>'``),
            ``respawn_interval`` and ``max_backoff`` (seconds),
            ``graceful_timeout`` (seconds; 0 waits for ever) and
            ``kill_margin`` (seconds past it before the kill, for children
            that cut themselves off at ``graceful_timeout``),
            ``worker_timeout`` (seconds; a child that has called
            :func:`heartbeat` and then not for this long is killed and
            replaced; 0 for off), ``recycler`` (a :class:`Recycler`),
            ``status(index, pid, restarts, recycles, last_exit, backoff)``
            (called when those change), ``on_stop(signum)`` (once, when
            stopping begins), ``on_spawn(index)`` (before each fork),
            ``on_pass()`` (every pass of the loop), ``readers`` (``{fd:
            callback}`` called when fd is readable), ``on_usr1()``,
            ``wait_on_hup`` (default True), ``watch_parent`` (default True:
            stop when the parent process exits).
    """
    if workers_desired == 0:
        worker_func(0)
        return
    Supervisor(workers_desired, worker_func, logger, **kwargs).run()  # type: ignore[arg-type]
