"""``client_timeout`` on the sockets TCP handlers get.

Waits of a second or more time out by a sweep of the worker's waits (no
hub timer per wait: brim.server.subserver.SweptTimeouts), shorter ones by
Eventlet's own timer; either way the handler sees ``socket.timeout``, never
early.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from harness import REPO, free_port, port_accepts, wait_until

#: Echoes lines; when a read times out, says which exception it got and
#: after how long (to one decimal), then closes. ``SHORT`` sets a 0.3 s
#: timeout for the next read.
HANDLER = '''
import time


class Timed:
    def __init__(self, name, parsed_conf):
        pass

    def __call__(self, subserver, stats, sock, ip, port):
        while True:
            began = time.monotonic()
            try:
                data = sock.recv(100)
            except Exception as err:
                sock.sendall(b'%s %.1f\\n' % (type(err).__name__.encode(), time.monotonic() - began))
                return
            if not data:
                return
            if data == b'SHORT\\n':
                sock.settimeout(0.3)
            sock.sendall(data)

    @classmethod
    def parse_conf(cls, name, conf):
        return {}

    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return []
'''


@pytest.fixture
def port(brimd):
    port = free_port()
    brimd.write_module('timed', HANDLER)
    brimd.write_conf('[tcp]\nport = %d\nworkers = 1\ncall = timed.Timed\nclient_timeout = 2\n' % port)
    brimd.start()
    wait_until(lambda: port_accepts(port), what='tcp port')
    return port


def _line(sock: socket.socket) -> bytes:
    data = b''
    while not data.endswith(b'\n'):
        chunk = sock.recv(100)
        if not chunk:
            break
        data += chunk
    return data


def test_long_wait_times_out_by_sweep_never_early(port):
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        # Active within client_timeout: served, however long the connection lasts.
        for _ in range(3):
            sock.settimeout(1.2)
            with pytest.raises(socket.timeout):
                sock.recv(100)  # the server stays quiet for 1.2 s, ...
            sock.settimeout(10)
            sock.sendall(b'ping\n')
            assert _line(sock) == b'ping\n'  # ...and the connection still serves
        # Silent for client_timeout (2 s): the handler's recv raises socket.timeout.
        name, waited = _line(sock).split()
        assert name in (b'timeout', b'TimeoutError')
        assert 2.0 <= float(waited) < 2.0 + 5


def test_short_timeout_set_by_the_handler_is_honoured(port):
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(b'SHORT\n')
        assert _line(sock) == b'SHORT\n'
        name, waited = _line(sock).split()
        assert name in (b'timeout', b'TimeoutError')
        assert 0.3 <= float(waited) < 2.0  # its own 0.3 s, not client_timeout


#: In a child process (Eventlet stays out of the test process): 20 green
#: threads wait on sockets with a 1.5 s timeout. Swept, the hub holds one
#: timer for all of them (Eventlet's own way: one each); each wait still
#: ends in socket.timeout, not before 1.5 s.
SWEPT_CHECK = '''
import socket, time, warnings
warnings.simplefilter('ignore')
from brim.server.subserver import SWEEP_TICK, connection_socket_class, import_eventlet
eventlet = import_eventlet()
cls = connection_socket_class(eventlet)
hub = eventlet.hubs.get_hub()
pairs = [socket.socketpair() for _ in range(20)]
results = []

def wait(raw):
    sock = cls(raw)
    sock.settimeout(1.5)
    began = time.monotonic()
    try:
        sock.recv(10)
    except socket.timeout:
        results.append(time.monotonic() - began)

threads = [eventlet.spawn(wait, a) for a, b in pairs]
eventlet.sleep(0.5)
timers = len(hub.timers) + len(hub.next_timers)
for thread in threads:
    thread.wait()
assert timers <= 2, timers
assert len(results) == 20 and min(results) >= 1.5 and max(results) < 1.5 + SWEEP_TICK + 2, results
print('ok')
'''


def test_swept_timeouts_use_one_hub_timer_for_every_wait():
    result = subprocess.run([sys.executable, '-c', SWEPT_CHECK], capture_output=True, text=True, timeout=60,
                            cwd=str(REPO))
    assert (result.returncode, result.stdout.strip()) == (0, 'ok'), result.stderr
