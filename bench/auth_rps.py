#!/usr/bin/env python3
"""Measure requests per second for one small file, with and without basic auth.

Starts one brimd (``python -m brim start`` with a generated conf, pid file and
log in a temporary directory, free 127.0.0.1 ports) with two WSGI subservers
of ``--workers`` workers each, serving the same directory:

* ``[wsgi]``  ``apps = files``       (no auth)
* ``[wsgi2]`` ``apps = auth files``  (brim.wsgi_basic_auth, one user, bcrypt
  hash of cost ``--cost``, default 12 as ``bcrypt.gensalt()`` makes)

The client is this process: ``--clients`` threads, each with one keep-alive
HTTP/1.1 connection, sending ``--requests`` GETs in all (bounded load) of
a 1 KiB file and reading each response whole (Content-Length framed) before
the next. Each subserver gets a warm-up round first (which for the auth
subserver pays bcrypt once per worker; after that the cached keyed digest
answers), then the two are measured alternately, ``--rounds`` times each,
and the best round of each is reported. Prints both rates and the ratio
(the goal: authenticated at least half the unauthenticated rate), and
exits 1 if any response was not 200 or the ratio is below 0.5. brimd is
stopped by its pid (SIGTERM, then SIGKILL to its process group if needed).

Usage: python bench/auth_rps.py [--requests 20000] [--clients 8] [--workers 1] [--rounds 3]
"""

from __future__ import annotations

import argparse
import base64
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import bcrypt

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONF = """[brim]
ip = 127.0.0.1
pid_file = {pid_file}
log_file = {log_file}
log_level = {log_level}

[wsgi]
port = {plain_port}
workers = {workers}
apps = files

[wsgi2]
port = {auth_port}
workers = {workers}
apps = auth files

[auth]
call = brim.wsgi_basic_auth.WSGIBasicAuth
auth_path = {auth_path}

[files]
call = brim.wsgi_fs.WSGIFS
path = /files
serve_path = {serve_path}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def read_response(sock: socket.socket, buffer: bytearray) -> int:
    """Read one Content-Length framed response from ``sock``; return its status."""
    while True:
        end = buffer.find(b'\r\n\r\n')
        if end >= 0:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError('server closed the connection')
        buffer += chunk
    lines = bytes(buffer[:end]).split(b'\r\n')
    status = int(lines[0].split(b' ', 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b':')
        if name.strip().lower() == b'content-length':
            length = int(value)
    total = end + 4 + length
    while len(buffer) < total:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError('server closed the connection mid-body')
        buffer += chunk
    del buffer[:total]
    return status


def load(port: int, request: bytes, total: int, clients: int) -> tuple[float, dict[int, int]]:
    """Send ``total`` requests over ``clients`` keep-alive connections; return (requests/s, {status: count})."""
    counts: dict[int, int] = {}
    lock = threading.Lock()
    shares = [total // clients + (1 if index < total % clients else 0) for index in range(clients)]
    ready = threading.Barrier(clients + 1)
    errors: list[BaseException] = []

    def client(share: int) -> None:
        seen: dict[int, int] = {}
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=30) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                buffer = bytearray()
                ready.wait()
                for _ in range(share):
                    sock.sendall(request)
                    status = read_response(sock, buffer)
                    seen[status] = seen.get(status, 0) + 1
        except BaseException as err:  # reported by the caller
            errors.append(err)
            ready.abort()
        with lock:
            for status, count in seen.items():
                counts[status] = counts.get(status, 0) + count

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    for thread in threads:
        thread.start()
    ready.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError('client failed: %r' % errors[0])
    return total / elapsed, counts


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError('port %d never accepted' % port)


def stop(pid: int) -> None:
    """SIGTERM brimd's main process by pid; SIGKILL its process group if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--requests', type=int, default=20000, help='requests per measured round')
    parser.add_argument('--clients', type=int, default=8, help='concurrent keep-alive connections')
    parser.add_argument('--workers', type=int, default=1, help='workers per subserver')
    parser.add_argument('--rounds', type=int, default=3, help='measured rounds per subserver (best kept)')
    parser.add_argument('--cost', type=int, default=12, help='bcrypt cost of the user\'s hash')
    parser.add_argument('--log-level', default='INFO', help='brimd log_level (INFO logs every request)')
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix='brim-bench-') as tmp:
        serve_path = os.path.join(tmp, 'www')
        os.mkdir(serve_path)
        with open(os.path.join(serve_path, 'small.txt'), 'wb') as fp:
            fp.write(b'x' * 1023 + b'\n')
        password = 'bench-password'
        auth_path = os.path.join(tmp, 'auth')
        with open(auth_path, 'w') as fp:
            fp.write('bench %s\n' % bcrypt.hashpw(password.encode(), bcrypt.gensalt(args.cost)).decode())
        plain_port, auth_port = free_port(), free_port()
        pid_file = os.path.join(tmp, 'brimd.pid')
        conf_path = os.path.join(tmp, 'brimd.conf')
        with open(conf_path, 'w') as fp:
            fp.write(CONF.format(pid_file=pid_file, log_file=os.path.join(tmp, 'brimd.log'),
                                 log_level=args.log_level, plain_port=plain_port, auth_port=auth_port,
                                 workers=args.workers, auth_path=auth_path, serve_path=serve_path))
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
        started = subprocess.run([sys.executable, '-m', 'brim', '-c', conf_path, 'start'], env=env,
                                 capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if started.returncode != 0:
            print('brimd failed to start: %s' % started.stderr.strip(), file=sys.stderr)
            return 1
        with open(pid_file) as fp:
            pid = int(fp.read().strip())
        try:
            wait_port(plain_port)
            wait_port(auth_port)
            plain = b'GET /files/small.txt HTTP/1.1\r\nHost: bench\r\n\r\n'
            token = base64.b64encode(('bench:' + password).encode()).decode()
            authed = plain.replace(b'\r\n\r\n', b'\r\nAuthorization: Basic %s\r\n\r\n' % token.encode())
            bad: dict[int, int] = {}
            rates: dict[str, list[float]] = {'plain': [], 'auth': []}
            targets = (('plain', plain_port, plain), ('auth', auth_port, authed))
            for _name, port, request in targets:
                _, counts = load(port, request, max(args.clients * 20, 500), args.clients)  # warm-up
                bad.update({status: count for status, count in counts.items() if status != 200})
            for _ in range(args.rounds):
                for name, port, request in targets:
                    rate, counts = load(port, request, args.requests, args.clients)
                    rates[name].append(rate)
                    bad.update({status: count for status, count in counts.items() if status != 200})
        finally:
            stop(pid)

    best_plain, best_auth = max(rates['plain']), max(rates['auth'])
    ratio = best_auth / best_plain
    print('unauthenticated: %.0f req/s  (rounds: %s)' % (best_plain, ' '.join('%.0f' % r for r in rates['plain'])))
    print('authenticated:   %.0f req/s  (rounds: %s)' % (best_auth, ' '.join('%.0f' % r for r in rates['auth'])))
    print('ratio auth/plain: %.2f  (goal >= 0.50)' % ratio)
    print('%d requests x %d rounds each, %d keep-alive clients, %d worker(s) per subserver, bcrypt cost %d, '
          'log_level %s; Python %s on %s %s, %d CPUs' % (
              args.requests, args.rounds, args.clients, args.workers, args.cost, args.log_level,
              platform.python_version(), platform.system(), platform.machine(), os.cpu_count() or 0))
    if bad:
        print('non-200 responses: %r' % bad, file=sys.stderr)
        return 1
    return 0 if ratio >= 0.5 else 1


if __name__ == '__main__':
    sys.exit(main())
