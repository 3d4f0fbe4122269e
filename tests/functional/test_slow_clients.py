"""Slow, idle and greedy clients against a real brimd (issue 6, point 3).

``client_timeout`` bounds the whole request head, each body read, each
write and idle keep-alive; slowloris clients are cut off on time while
others are served; ``concurrent_per_worker`` is a real cap; the head and
body limits of the conf are honoured. Every socket has a timeout, so no
test can hang.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
from harness import SLOW_APP, free_port, get_stats, http_request, port_accepts, wait_until

BIG_APP = '''
class Big:
    """GET /big?n answers n bytes, 64 KiB at a time, from a generator."""

    def __init__(self, name, parsed_conf, next_app):
        self.next_app = next_app

    def __call__(self, env, start_response):
        if env['PATH_INFO'] != '/big':
            return self.next_app(env, start_response)
        size = int(env['QUERY_STRING'])
        start_response('200 OK', [('Content-Length', str(size))])

        def body():
            left = size
            while left:
                chunk = min(left, 65536)
                left -= chunk
                yield b'x' * chunk
        return body()
'''

CONF = """
[brim]
client_timeout = %(timeout)s
%(extra)s

[wsgi]
port = %(port)d
workers = 1
apps = slow big echo stats

[slow]
call = slowapp.Slow

[big]
call = bigapp.Big

[echo]
call = brim.wsgi_echo.WSGIEcho

[stats]
call = brim.wsgi_stats.WSGIStats
"""


def deploy(brimd, timeout: float = 2.0, extra: str = '') -> int:
    port = free_port()
    brimd.write_module('slowapp', SLOW_APP)
    brimd.write_module('bigapp', BIG_APP)
    brimd.write_conf(CONF % dict(port=port, timeout=timeout, extra=extra))
    brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    return port


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(('127.0.0.1', port), timeout=timeout)


def read_all(sock: socket.socket) -> bytes:
    """Everything until the server closes (the socket's timeout bounds each wait)."""
    data = b''
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def status_of(response: bytes) -> int:
    assert response.startswith(b'HTTP/1.1 '), response[:80]
    return int(response[9:12])


def wsgi_stat(port: int, name: str) -> int:
    return get_stats(port)['wsgi'][name]


def test_slowloris_is_cut_off_on_time_while_others_are_served(brimd):
    """50 clients trickling a head one byte a second each get 408 and a
    close once client_timeout has passed since their first byte, and
    meanwhile ordinary requests are answered as usual."""
    timeout = 3.0
    port = deploy(brimd, timeout=timeout)
    head = b'GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: ' + b'a' * 100
    slow = [connect(port) for _ in range(50)]
    began = time.monotonic()
    stop = threading.Event()

    def trickle() -> None:
        for index in range(len(head)):
            for sock in slow:
                try:
                    sock.send(head[index:index + 1])
                except OSError:
                    pass
            if stop.wait(1.0):
                return

    feeder = threading.Thread(target=trickle, daemon=True)
    feeder.start()
    served = 0
    try:
        while time.monotonic() - began < timeout - 0.5:
            # Each ordinary request must be answered within a second (the
            # request's own timeout): the slow ones hold nothing up.
            status, _, body = http_request(port, path='/echo', body=b'ping', timeout=1)
            assert (status, body) == (200, b'ping')
            served += 1
        # Every slow client is answered 408 and closed, before a few seconds
        # past client_timeout (the read's timeout, counted from the start).
        for sock in slow:
            sock.settimeout(max(0.1, began + timeout + 4 - time.monotonic()))
            response = read_all(sock)
            assert status_of(response) == 408
    finally:
        stop.set()
        feeder.join(5)
        for sock in slow:
            sock.close()
    assert served
    assert wsgi_stat(port, 'status_408_count') >= 50


def test_idle_keepalive_connection_is_closed_after_client_timeout(brimd):
    port = deploy(brimd, timeout=1.0)
    with connect(port) as sock:
        sock.sendall(b'GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi')
        first = sock.recv(65536)
        assert status_of(first) == 200 and first.endswith(b'hi')
        sock.settimeout(5)  # client_timeout is 1 s: a read still waiting at 5 s fails
        assert read_all(sock) == b''  # closed, with no 408: nothing had begun


def test_body_that_stalls_gets_408(brimd):
    port = deploy(brimd, timeout=1.0)
    with connect(port) as sock:
        sock.sendall(b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc')
        sock.settimeout(6)
        response = read_all(sock)
    assert status_of(response) == 408
    assert b'Connection: close' in response
    assert wsgi_stat(port, 'status_408_count') == 1


def test_client_that_does_not_read_is_cut_off(brimd):
    """Each write is bounded: a client that stops reading a 64 MiB answer
    is disconnected, and the worker goes on serving."""
    port = deploy(brimd, timeout=1.0)
    pid = http_request(port, path='/pid')[2]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(('127.0.0.1', port))
        size = 64 << 20
        sock.sendall(b'GET /big?%d HTTP/1.1\r\nHost: x\r\n\r\n' % size)
        time.sleep(3)  # not reading: the server's writes stall
        received = read_all(sock)
    assert 0 < len(received) < size
    assert http_request(port, path='/pid')[2] == pid


def test_concurrent_per_worker_is_a_cap(brimd):
    """Past concurrent_per_worker open connections, a new one waits in the
    backlog (accepted by the kernel, not served) until one closes."""
    port = deploy(brimd, extra='concurrent_per_worker = 2', timeout=30)
    request = b'GET /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx'
    first, second = connect(port), connect(port)
    try:
        for sock in (first, second):
            sock.sendall(request)
            assert status_of(sock.recv(65536)) == 200
        third = connect(port)
        with third:
            third.sendall(request)
            third.settimeout(1.5)
            with pytest.raises(socket.timeout):
                third.recv(65536)
            first.close()
            third.settimeout(10)
            assert status_of(third.recv(65536)) == 200
    finally:
        first.close()
        second.close()


def test_conf_limits_are_honoured(brimd):
    port = deploy(brimd, extra='max_request_line = 100\nmax_header_line = 200\nmax_headers = 5\n'
                              'max_header_size = 1000\nmax_body_size = 10')
    cases = [
        (b'GET /' + b'a' * 100 + b' HTTP/1.1\r\nHost: x\r\n\r\n', 414),
        (b'GET / HTTP/1.1\r\nHost: x\r\nX-Long: ' + b'a' * 200 + b'\r\n\r\n', 431),
        (b'GET / HTTP/1.1\r\nHost: x\r\n' + b'X-A: b\r\n' * 5 + b'\r\n', 431),
        (b'GET / HTTP/1.1\r\nHost: x\r\n' + b'X-A: ' + b'b' * 150 + b'\r\n' * 1 +
         b'X-B: ' + b'b' * 150 + b'\r\n' + b'X-C: ' + b'b' * 150 + b'\r\n' + b'X-D: ' + b'b' * 150 + b'\r\n'
         + b'X-E: ' + b'b' * 150 + b'\r\n\r\n', 431),
        (b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n' + b'b' * 11, 413),
        (b'POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nbbbbbb\r\n6\r\nbbbbbb\r\n0\r\n\r\n',
         413),
    ]
    for data, expected in cases:
        with connect(port) as sock:
            sock.sendall(data)
            response = read_all(sock)
        assert status_of(response) == expected, data[:60]
        assert b'Connection: close' in response
    # At the limits, requests are served.
    with connect(port) as sock:
        sock.sendall(b'POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nConnection: close\r\n\r\n'
                     + b'b' * 10)
        assert status_of(read_all(sock)) == 200
    assert wsgi_stat(port, 'status_4xx_count') == len(cases)
