"""The UDP subserver: each worker receives datagrams for its handler class.

Every datagram (up to ``max_datagram_size`` bytes) is handed to
``handler(subserver, stats, sock, datagram, ip, port)``, which replies with
``sock.sendto``. How it runs depends on one class attribute of the handler:

- By default the handler runs **inline**: the worker's receive loop calls
  it in the loop's own green thread, with no green thread spawned per
  datagram, and reads the next datagram when it returns. Right for a
  handler that computes and replies (``sock.sendto`` may wait for the
  socket to be writable; meanwhile the kernel queues what arrives). While
  such a handler waits on anything else (``eventlet.sleep``, other I/O),
  the worker receives nothing.
- ``blocks = True`` on the handler class says that it may wait (sleep,
  call other services): then each datagram runs in its own green thread,
  at most ``concurrent_per_worker`` at once; past that, the loop waits for
  one to end, and datagrams queue in the kernel's receive buffer.

A handler that raises is logged and replaced by a new instance for later
datagrams (the original brim's contract), either way.

The inline loop does per datagram only what a bare ``recvfrom``/``sendto``
loop does, plus counting ``datagram_count`` (before the handler runs, so
``/stats`` shows a datagram once its reply is out) and calling the handler: it
reads the raw non-blocking socket until it would block, waits in the hub
only then, and yields to the hub after every :data:`BURST` datagrams read
without waiting, so that under a flood the worker's heartbeat (the
watchdog), signals and the other green threads still run. The ``sock``
handlers get is a ``GreenSocket`` whose ``sendto`` calls the raw socket
first and waits in the hub only if that would block (:func:`reply_socket`).

A graceful stop (SIGHUP) ends the loop at once if it is waiting for a
datagram, else as soon as the datagram in hand is handled; datagrams still
queued in the kernel stay for the other workers (or the next brimd, after a
restart). Replies go out on the receiving socket, so this worker's copy of
it is closed once the datagrams in progress are handled (at once when none
is), not before: their replies are not lost.

Invariant: Eventlet is imported only when a runner is made, in a worker.
"""

from __future__ import annotations

from typing import Any

from brim.server.subserver import (DatagramSubserver, HandlerRunner, HandlerSubserver, StopServing, close_listener,
                                   wait_for_pool)
from brim.stats import BucketStats

#: Datagrams the receive loop handles back to back, without waiting for the
#: socket, before it yields to the hub (``eventlet.sleep(0)``). A yield is
#: one hub turn (a zero-timeout poll), some 4 us; 64 echoed datagrams take
#: some 400 us, so it costs about 1% under a flood, while the hub still
#: runs thousands of times a second (every 64 ms for a handler computing
#: 1 ms per datagram).
BURST = 64


def reply_socket(eventlet: Any, raw: Any) -> Any:
    """The green socket handlers get, over the worker's raw UDP socket
    (already non-blocking): an Eventlet ``GreenSocket`` whose ``sendto``
    first tries the raw socket once and takes Eventlet's waiting path only
    when the send buffer is full (``BlockingIOError``). Same results and
    errors as ``GreenSocket.sendto``, without its per-call cost (it makes a
    timeout exception object on every call, even one that never waits).

    Args:
        eventlet: The eventlet module.
        raw: The ``socket.socket`` (SOCK_DGRAM) the worker receives on.
    """
    class UDPSocket(eventlet.greenio.GreenSocket):
        def sendto(self, data: bytes, *args: Any) -> int:
            try:
                return self.fd.sendto(data, *args)
            except BlockingIOError:
                return super().sendto(data, *args)

    return UDPSocket(raw, set_nonblocking=False)


def handler_blocks(cls: type) -> bool:
    """True if UDP handler class ``cls`` declares ``blocks = True`` (a
    green thread per datagram), False for inline handling (the default)."""
    return bool(getattr(cls, 'blocks', False))


class UDPRunner(HandlerRunner):
    """Receives datagrams on the worker's socket and hands each to the handler.

    Inline (the default), the handler runs in the receive loop's green
    thread; with ``blocks = True`` on the handler class, each datagram runs
    in a green thread of :attr:`pool` (at most ``concurrent_per_worker``
    at once). See the module docstring.

    Attributes:
        sock: What handlers get: :func:`reply_socket` over the worker's socket.
        green_sock: The plain ``GreenSocket`` the base class made (kept
            referenced only: collected, it would close the socket).
        size: ``max_datagram_size`` in bytes: the most read per datagram.
        blocks: True if the handler class says ``blocks = True``.
        parked: True while the loop waits in the hub with no datagram in
            hand (for the socket, or yielding after a burst); only then may
            a graceful stop throw :class:`StopServing` into it.
    """

    count = 'datagram_count'

    def __init__(self, sub: 'UDPSubserver', stats: BucketStats) -> None:
        super().__init__(sub, stats)  # makes sub.sock non-blocking
        # Kept: a GreenSocket closes its socket when it is collected.
        self.green_sock = self.sock
        self.sock = reply_socket(self.eventlet, sub.sock)
        self.size: int = sub.values['max_datagram_size']
        self.blocks = handler_blocks(self.loaded.cls)
        self.parked = False

    def handle_unit(self, handler: Any, datagram: bytes, address: tuple) -> None:
        """Run ``handler(subserver, stats, sock, datagram, ip, port)`` on one datagram."""
        handler(self.sub, self.stats, self.sock, datagram, address[0], address[1])

    def serve(self) -> None:
        """Receive and handle datagrams until a graceful stop; then wait for
        those in progress and close this worker's copy of the socket."""
        self.thread = self.eventlet.getcurrent()
        try:
            self._receive_loop()
        except StopServing:
            pass
        wait_for_pool(self.eventlet, self.pool)
        close_listener(self.sock)

    def _receive_loop(self) -> None:
        """The loop itself, lean on purpose: everything it uses per datagram
        is a local; the raw socket is non-blocking (GreenSocket made it so).

        Raises:
            StopServing: thrown in by :meth:`end_accept_loop` while parked.
        """
        eventlet = self.eventlet
        trampoline, sleep = eventlet.hubs.trampoline, eventlet.sleep
        raw = self.sock.fd
        recvfrom, fileno, size = raw.recvfrom, raw.fileno(), self.size
        sub, stats, sock = self.sub, self.stats, self.sock
        incr, count = stats.incr, self.count
        spawn_n = self.pool.spawn_n if self.blocks else None
        handle = self._handle
        handler = self.handler
        burst, burst_max = 0, BURST
        while self.serving:
            try:
                datagram, address = recvfrom(size)
            except BlockingIOError:
                burst = 0
                self.parked = True
                try:
                    trampoline(fileno, read=True)
                finally:
                    self.parked = False
                continue
            except OSError as err:
                if not self.serving:
                    break
                sub.logger.warning('recvfrom failed: %s', err)
                self.parked = True
                try:
                    sleep(0.01)
                finally:
                    self.parked = False
                continue
            incr(count)  # before the handler: once its reply is out, /stats shows the datagram
            if spawn_n is not None:
                spawn_n(handle, (datagram, address))
            else:
                try:
                    handler(sub, stats, sock, datagram, address[0], address[1])
                except Exception:
                    self.replace_handler(handler)
                    handler = self.handler
            burst += 1
            if burst >= burst_max:
                burst = 0
                self.parked = True
                try:
                    sleep(0)
                finally:
                    self.parked = False

    def end_accept_loop(self) -> bool:
        """End the receive loop: at once if it is parked, else once the
        datagram in hand is handled. The socket is closed by :meth:`serve`
        when the datagrams in progress are done (replies use it). Returns
        False if already done."""
        if not self.serving:
            return False
        self.serving = False
        if self.parked and self.thread is not None and self.thread is not self.eventlet.getcurrent():
            self.eventlet.kill(self.thread, StopServing())
        return True

    def open_count(self) -> int:
        """Datagrams being handled now: the pool's green threads, plus one
        while an inline handler is suspended (the loop is neither parked
        nor done)."""
        inline = 0
        if not self.blocks and self.thread is not None and not self.thread.dead and not self.parked:
            inline = 1
        return self.pool.running() + inline


class UDPSubserver(HandlerSubserver, DatagramSubserver):
    """Subserver for a ``[udp]``, ``[udp2]``, ``[udp#name]`` section."""

    kind = 'udp'
    app_kind = 'udp'
    runner = UDPRunner
