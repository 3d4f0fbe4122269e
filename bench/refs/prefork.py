"""Pre-forking and per-worker counting for the bare reference servers.

The references in this directory are what brimd is measured against in
``bench/compare.py``: the least code that serves the same thing on Eventlet
with pre-forked workers. They share this module:

* :func:`prefork`: the parent imports Eventlet (:func:`import_eventlet`),
  binds the socket (a plain stdlib socket), forks the children, and waits.
  Importing Eventlet creates no hub (that happens at the first green socket
  or sleep), so no hub or epoll descriptor is shared between processes: the
  children make theirs when they wrap the socket. Importing before the fork
  lets the workers share those pages, as brimd's workers share them (its
  supervisors import Eventlet before forking).
  SIGTERM or SIGINT to the parent (or one child exiting) ends them all. Each
  child asks the kernel for SIGKILL if the parent dies (``PR_SET_PDEATHSIG``).
  Children are not restarted.
* :class:`SharedCount`: a per-process counter in an 8-byte shared file
  mapping, ``$BENCH_COUNT_DIR/<pid>``, so the bench can read each worker's
  count at any time without asking it (no request, no signal). brimd counts
  requests, connections and datagrams in shared memory too (its ``/stats``),
  so the references pay a comparable (tiny) cost. Without
  ``BENCH_COUNT_DIR`` nothing is counted.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import socket
import sys
import time
from typing import Any, Callable, Optional

PR_SET_PDEATHSIG = 1


class SharedCount:
    """A counter of this process in ``$BENCH_COUNT_DIR/<pid>`` (8 bytes, native int64).

    Opened on first use in each process (a fork starts a new file), so it can
    be made before the fork.
    """

    def __init__(self) -> None:
        self.directory = os.environ.get('BENCH_COUNT_DIR', '')
        self.view: Optional[memoryview] = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self.view = None

    def open(self) -> memoryview:
        """Create this process's counter file and return its int64 view."""
        path = os.path.join(self.directory, str(os.getpid()))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, 8)
            mapping = mmap.mmap(fd, 8)
        finally:
            os.close(fd)
        self.view = memoryview(mapping).cast('q')
        return self.view

    def add(self, amount: int = 1) -> None:
        """Add ``amount`` to this process's count (nothing without BENCH_COUNT_DIR)."""
        view = self.view
        if view is None:
            if not self.directory:
                return
            view = self.open()
        view[0] += amount


def listen_tcp(port: int, backlog: int = 4096) -> socket.socket:
    """A listening TCP socket on 127.0.0.1:``port`` (plain, blocking: wrap it after the fork)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(('127.0.0.1', port))
    sock.listen(backlog)
    return sock


def bind_udp(port: int) -> socket.socket:
    """A UDP socket bound to 127.0.0.1:``port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', port))
    return sock


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the bench kills the process group anyway
        pass


def prefork(workers: int, child: Callable[[int], None]) -> int:
    """Fork ``workers`` children running ``child(index)``; wait; return an exit status.

    The parent returns when SIGTERM or SIGINT arrives or any child exits,
    after stopping the others (SIGTERM, then SIGKILL after 5 s).
    """
    parent = os.getpid()
    children: dict[int, int] = {}
    for index in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                _die_with_parent()
                if os.getppid() != parent:  # the parent died before prctl
                    os._exit(1)
                child(index)
            except BaseException as err:  # a child must never return into the parent's code
                print('child %d: %s: %s' % (index, type(err).__name__, err), file=sys.stderr, flush=True)
                code = 1
            finally:
                os._exit(code)
        children[pid] = index

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    code = 0
    try:
        pid, status = os.wait()
        children.pop(pid, None)
        print('child %d exited with status %d; stopping' % (pid, status), file=sys.stderr, flush=True)
        code = 1
    except SystemExit:
        pass
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while children and time.monotonic() < deadline:
            for pid in list(children):
                try:
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        children.pop(pid)
                except ChildProcessError:
                    children.pop(pid)
            time.sleep(0.02)
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
    return code


def import_eventlet() -> Any:
    """Import Eventlet, its green sockets and ``eventlet.wsgi`` (silencing its maintenance-mode warning).

    Called in the parent before the fork: it creates no hub.
    """
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import eventlet
        import eventlet.greenio
        import eventlet.wsgi  # noqa: F401
    return eventlet
