"""Functions for background services: sockets, privileges, stdio, supervision.

:func:`sustain_workers` is brimd's supervisor: it forks workers and keeps
them running. Its loop reads as steps: wait for a signal (with a timeout,
never a blocking ``os.wait()``, which since PEP 475 a signal no longer
interrupts), handle recorded signals, reap every exited child with
``waitpid(-1, WNOHANG)`` and log its decoded status, restore the worker count
(throttled), check the parent is alive.

Invariants: signal handlers only record the signal number (and wake the loop
through :func:`signal.set_wakeup_fd`); nothing is logged inside a handler.
Nothing here imports Eventlet: these run in the main process and the
supervisors, which must stay fork-safe.
"""

from __future__ import annotations

import errno
import grp
import logging
import os
import pwd
import select
import signal
import socket
import sys
import time
from types import TracebackType
from typing import Callable, Optional

from brim.errors import StartupError

#: Exit status of a worker that could not boot (EX_CONFIG, sysexits.h):
#: the supervisor logs it and does not restart that worker.
EXIT_BOOT_FAILED = 78


def signum2str(signum: int) -> str:
    """Return the name of a signal number, e.g. ``'SIGHUP'`` for 1.

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
        umask: The process umask.

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
        retry: Seconds to keep retrying while the address is in use.

    Raises:
        StartupError: naming the address if it cannot be bound.
    """
    return _listening_socket(ip, port, socket.SOCK_STREAM, retry, lambda s: s.listen(backlog))


def get_listening_udp_socket(ip: str, port: int, retry: float = 30) -> socket.socket:
    """Return a plain UDP socket bound to ``ip:port``.

    Args: as :func:`get_listening_tcp_socket`, without backlog.

    Raises:
        StartupError: naming the address if it cannot be bound.
    """
    return _listening_socket(ip, port, socket.SOCK_DGRAM, retry, lambda s: None)


class Supervisor:
    """Forks ``workers_desired`` children running ``worker_func(index)`` and
    keeps them running until HUP or TERM; see :func:`sustain_workers`.
    """

    def __init__(self, workers_desired: int, worker_func: Callable[[int], Optional[int]],
                 logger: Optional[logging.Logger] = None, name: str = 'worker',
                 respawn_interval: float = 1.0, on_stop: Optional[Callable[[int], None]] = None,
                 wait_on_hup: bool = True, on_spawn: Optional[Callable[[int], None]] = None,
                 watch_parent: bool = True, label: Optional[Callable[[int], str]] = None) -> None:
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
        self.children: dict[int, int] = {}  # pid -> index
        self.failed: set[int] = set()
        self.pending: list[int] = []
        self.stopping: Optional[int] = None
        self.last_spawn = 0.0
        self.parent = os.getppid()
        self._wake_r = self._wake_w = -1

    # -- signals --------------------------------------------------------------

    def _record(self, signum: int, frame: object) -> None:
        self.pending.append(signum)

    def _install_signals(self) -> None:
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, self._record)

    def _reset_in_child(self) -> None:
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        os.close(self._wake_r)
        os.close(self._wake_w)

    # -- steps ----------------------------------------------------------------

    def wait(self, timeout: float) -> None:
        """Sleep until a signal arrives or ``timeout`` seconds pass."""
        if self.pending:
            return
        try:
            select.select([self._wake_r], [], [], timeout)
        except InterruptedError:
            pass
        try:
            while os.read(self._wake_r, 512):
                pass
        except BlockingIOError:
            pass

    def handle_signals(self) -> None:
        while self.pending:
            signum = self.pending.pop(0)
            handler = getattr(self, 'handle_' + signum2str(signum).lower(), None)
            if handler:
                handler()

    def handle_sighup(self) -> None:
        self._stop(signal.SIGHUP)

    def handle_sigterm(self) -> None:
        self._stop(signal.SIGTERM)

    handle_sigint = handle_sigterm

    def handle_sigchld(self) -> None:
        pass  # reap() runs every pass

    def _stop(self, signum: int) -> None:
        if self.stopping == signal.SIGTERM:
            return
        self.stopping = signum
        self.logger.info('%s: %s received; relaying to %d children', self.name,
                         signum2str(signum), len(self.children))
        if self.on_stop:
            self.on_stop(signum)
        self.relay(signum)

    def relay(self, signum: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if not pid:
                return
            index = self.children.pop(pid, None)
            if index is None:
                continue
            how = describe_status(status)
            label = self.label(index)
            if self.stopping is not None:
                self.logger.info('%s (pid %d) exited: %s', label, pid, how)
            elif os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_BOOT_FAILED:
                self.failed.add(index)
                self.logger.critical('%s (pid %d) could not start (%s); not restarting it: '
                                     'fix the cause and restart brimd', label, pid, how)
            else:
                self.logger.error('%s (pid %d) exited: %s; restarting it', label, pid, how)

    def restore(self) -> None:
        """Fork missing workers: all at once at first, then one per interval."""
        running = set(self.children.values())
        missing = [i for i in range(self.workers_desired) if i not in running and i not in self.failed]
        for index in missing:
            now = time.monotonic()
            if self.last_spawn and now - self.last_spawn < self.respawn_interval:
                return
            self.spawn(index)
            if self.initial_done:
                self.last_spawn = now

    def spawn(self, index: int) -> None:
        if self.on_spawn:
            self.on_spawn(index)
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                self._reset_in_child()
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
        self.children[pid] = index

    def parent_alive(self) -> bool:
        return not self.watch_parent or os.getppid() == self.parent

    # -- loop -----------------------------------------------------------------

    def run(self) -> None:
        self._install_signals()
        self.initial_done = False
        try:
            self.restore()
            self.initial_done = True
            self.last_spawn = time.monotonic()
            while True:
                self.handle_signals()
                self.reap()
                if self.stopping is not None:
                    if self.stopping == signal.SIGTERM or not self.wait_on_hup or not self.children:
                        break
                else:
                    self.restore()
                    if not self.parent_alive():
                        self.logger.error('%s: parent process exited; stopping', self.name)
                        self._stop(signal.SIGTERM)
                        continue
                self.wait(1.0)
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
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
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
    and exits with its int result (0 otherwise; 1 if it raises). A child that
    exits is forked again with the same index, at most once per
    ``respawn_interval`` (1 s) after the first round, and its exit status or
    signal is logged; one exiting with :data:`EXIT_BOOT_FAILED` is not
    restarted. Returns after SIGHUP (relayed to the children, then waits for
    them to finish) or SIGTERM/SIGINT (relayed; children that have not
    exited after 5 s are killed).

    If ``workers_desired`` is 0, ``worker_func(0)`` is called in this process
    ("inproc" mode, for debugging) and its return ends the call.

    Args:
        workers_desired: How many children to keep running.
        worker_func: Called in each child with its index.
        logger: Where exits are logged (default ``brim.service``).
        kwargs: ``name`` (shown in log lines), ``respawn_interval``
            (seconds), ``on_stop(signum)`` (called once when stopping begins),
            ``on_spawn(index)`` (called before each fork), ``wait_on_hup``
            (default True), ``watch_parent`` (default True: stop when the
            parent process exits), ``label(index)`` (how a child is named in
            log lines, default ``'<name> <index>'``).
    """
    if workers_desired == 0:
        worker_func(0)
        return
    Supervisor(workers_desired, worker_func, logger, **kwargs).run()  # type: ignore[arg-type]
