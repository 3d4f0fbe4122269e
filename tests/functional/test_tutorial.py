"""The examples/ key-value service, run as the tutorial runs it.

``examples/brimd.conf`` is copied with only its ports (to free ones) and
``/tmp/brim-kv`` (to a temporary directory) changed, and served by a real
brimd with the repository's ``examples`` package; every claim of the
examples' docstrings is checked over real TCP, HTTP and UDP, and the
snapshot daemon is killed mid-write.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import uuid
from pathlib import Path
from typing import Any, Optional

import pytest

from harness import REPO, Brimd, alive, free_port, http_request, port_accepts, wait_until

EXAMPLES = REPO / 'examples'
AUTH = {'Authorization': 'Basic ' + base64.b64encode(b'demo:demo').decode()}
PORTS = {'wsgi': 8180, 'tcp': 8181, 'udp': 8182}


def deploy(directory: Path, overrides: str = '') -> tuple[Brimd, dict[str, int]]:
    """Write examples/brimd.conf for ``directory`` and free ports (plus an
    ``overrides`` conf read after it, if given); return the deployment and
    its ports. Not started."""
    brimd = Brimd(directory)
    text = (EXAMPLES / 'brimd.conf').read_text()
    assert text.count('/tmp/brim-kv') >= 5
    text = text.replace('/tmp/brim-kv', str(directory))
    ports = {kind: free_port() for kind in PORTS}
    for kind, port in PORTS.items():
        assert text.count('port = %d\n' % port) == 1, kind
        text = text.replace('port = %d\n' % port, 'port = %d\n' % ports[kind])
    brimd.conf_path.write_text(text)
    brimd.cwd = REPO  # as the tutorial runs it: auth_path = examples/users is relative to it
    if overrides:
        extra = directory / 'overrides.conf'
        extra.write_text(overrides)
        brimd.extra_confs.append(extra)
    return brimd, ports


def start(brimd: Brimd, ports: dict[str, int]) -> None:
    brimd.start()
    wait_until(lambda: port_accepts(ports['wsgi']) and port_accepts(ports['tcp']), what='ports')


@pytest.fixture(scope='module')
def service(tmp_path_factory):
    """One running service shared by the tests that don't kill anything."""
    brimd, ports = deploy(tmp_path_factory.mktemp('kv'))
    try:
        start(brimd, ports)
        yield brimd, ports
    finally:
        brimd.cleanup()


def tcp_lines(port: int, *lines: bytes, timeout: float = 10.0) -> list[bytes]:
    """Send ``lines`` (each + ``\\n``) on one connection, close our side,
    and return the answer lines until the server closes."""
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall(b''.join(line + b'\n' for line in lines))
        sock.shutdown(socket.SHUT_WR)
        received = b''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return received.splitlines()
            received += chunk


def api(port: int, method: str, path: str, body: Optional[Any] = None, auth: bool = True,
        headers: Optional[dict] = None) -> tuple[int, dict, Any]:
    """An HTTP request to the API; returns (status, headers, parsed JSON or raw body)."""
    data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
    status, response_headers, raw = http_request(port, method, path, body=data,
                                                 headers={**(AUTH if auth else {}), **(headers or {})})
    if response_headers.get('content-type') == 'application/json' and raw:
        return status, response_headers, json.loads(raw)
    return status, response_headers, raw


def stats(ports: dict[str, int]) -> dict:
    status, _, body = api(ports['wsgi'], 'GET', '/stats')
    assert status == 200
    return body


def test_check_passes_without_warnings(service):
    brimd, _ = service
    result = brimd.run('check')
    assert result.returncode == 0, result.stderr
    assert 'warning' not in (result.stdout + result.stderr).lower()
    assert result.stdout.rstrip().endswith('conf OK')
    for needed in ('examples.request_id.RequestID', 'brim.wsgi_basic_auth.WSGIBasicAuth', 'examples.kv_api.KVAPI',
                   'examples.kv_tcp.KVServer', 'examples.statsd_udp.StatsdCounter', 'examples.snapshot.Snapshot'):
        assert needed in result.stdout


def test_tcp_line_protocol(service):
    _, ports = service
    port = ports['tcp']
    assert tcp_lines(port, b'SET t1 hello world', b'GET t1', b'DEL t1', b'GET t1', b'DEL t1') == [
        b'OK', b'VALUE hello world', b'DELETED', b'NOT_FOUND', b'NOT_FOUND']
    # \r\n works too; an empty value is a value; UTF-8 text round-trips.
    assert tcp_lines(port, b'SET t2 \r', b'GET t2\r', 'SET t3 caf\u00e9 \u2615'.encode(), b'GET t3') == [
        b'OK', b'VALUE ', b'OK', 'VALUE caf\u00e9 \u2615'.encode()]
    # Errors answer ERROR and leave the connection open for the next request.
    answers = tcp_lines(port, b'HELLO', b'get t3', b'SET t4', b'SET bad/key x', b'GET .hidden', b'GET ' + b'k' * 201,
                        b'SET t5 \xff', b'', b'GET t3')
    assert answers == [
        b'ERROR unknown command: use SET, GET or DEL',
        b'ERROR unknown command: use SET, GET or DEL',
        b'ERROR usage: SET key value',
        b'ERROR bad key: 1-200 of A-Z a-z 0-9 _ . - and not starting with .',
        b'ERROR bad key: 1-200 of A-Z a-z 0-9 _ . - and not starting with .',
        b'ERROR bad key: 1-200 of A-Z a-z 0-9 _ . - and not starting with .',
        b'ERROR not UTF-8',
        b'ERROR unknown command: use SET, GET or DEL',
        'VALUE caf\u00e9 \u2615'.encode()]
    # A line over max_line (65536 bytes) is refused and the connection closed.
    long_line = b'SET t6 ' + b'x' * (65537 - 7)
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(long_line)
        with sock.makefile('rb') as reader:
            assert reader.read() == b'ERROR line too long\n'
    assert tcp_lines(port, b'GET t6') == [b'NOT_FOUND']

    def counted():
        tcp = stats(ports)['tcp']
        return tcp if tcp['errors'] >= 9 and tcp['sets'] >= 3 else None
    tcp = wait_until(counted, what='tcp stats')
    assert {'sets', 'gets', 'deletes', 'errors'} <= set(tcp['0'])


def test_api_needs_auth_and_tags_every_answer(service):
    _, ports = service
    status, headers, _ = api(ports['wsgi'], 'GET', '/kv/', auth=False)
    assert status == 401
    assert headers['www-authenticate'] == 'Basic realm="brim-kv", charset="UTF-8"'
    uuid.UUID(headers['x-request-id'])  # a new transaction id, even on a 401
    status, headers, _ = api(ports['wsgi'], 'GET', '/stats', auth=False)
    assert status == 401  # /stats is behind auth too
    wrong = {'Authorization': 'Basic ' + base64.b64encode(b'demo:wrong').decode()}
    assert api(ports['wsgi'], 'GET', '/kv/', auth=False, headers=wrong)[0] == 401
    ids = {api(ports['wsgi'], 'GET', '/kv/')[1]['x-request-id'] for _ in range(3)}
    assert len(ids) == 3 and all(uuid.UUID(txn) for txn in ids)
    assert api(ports['wsgi'], 'GET', '/kv/', headers={'X-Txn': 'my-txn-1'})[1]['x-request-id'] == 'my-txn-1'
    # Paths outside /kv/ and /stats reach brimd's own 404, still tagged.
    status, headers, _ = api(ports['wsgi'], 'GET', '/elsewhere')
    assert status == 404 and 'x-request-id' in headers


def test_api_json(service):
    _, ports = service
    port = ports['wsgi']
    assert api(port, 'PUT', '/kv/a1', {'value': 'one'})[::2] == (201, {'key': 'a1', 'value': 'one'})
    assert api(port, 'PUT', '/kv/a1', {'value': 'uno'})[::2] == (200, {'key': 'a1', 'value': 'uno'})
    status, headers, body = api(port, 'GET', '/kv/a1')
    assert (status, body) == (200, {'key': 'a1', 'value': 'uno'})
    assert headers['content-type'] == 'application/json'
    status, headers, body = api(port, 'HEAD', '/kv/a1')
    assert (status, body) == (200, b'') and int(headers['content-length']) > 0
    status, _, body = api(port, 'GET', '/kv/')
    assert status == 200 and 'a1' in body['keys'] and body['keys'] == sorted(body['keys'])
    assert api(port, 'GET', '/kv/missing')[::2] == (404, {'error': 'not found'})
    assert api(port, 'PUT', '/kv/a1', b'{not json')[::2] == (400, {'error': 'body is not JSON'})
    assert api(port, 'PUT', '/kv/a1', b'\xff')[::2] == (400, {'error': 'body is not JSON'})
    for bad in ({'value': 3}, {'other': 'x'}, ['value']):
        assert api(port, 'PUT', '/kv/a1', bad)[::2] == (400, {'error': 'body must be {"value": "<text>"}'})
    assert api(port, 'PUT', '/kv/a1', {'value': 'two\nlines'})[::2] == (
        400, {'error': 'bad value: text without line breaks'})
    status, _, body = api(port, 'PUT', '/kv/.hidden', {'value': 'x'})
    assert status == 400 and body['error'].startswith('bad key')
    assert api(port, 'PUT', '/kv/big', {'value': 'x' * 70000})[::2] == (413, {'error': 'body over 65536 bytes'})
    status, headers, body = api(port, 'POST', '/kv/a1', {'value': 'x'})
    assert (status, headers['allow'], body) == (405, 'GET, HEAD, PUT, DELETE', {'error': 'method not allowed'})
    status, headers, _ = api(port, 'DELETE', '/kv/')
    assert (status, headers['allow']) == (405, 'GET, HEAD')
    assert api(port, 'GET', '/kv/a1')[2] == {'key': 'a1', 'value': 'uno'}  # the failures changed nothing
    status, headers, body = api(port, 'DELETE', '/kv/a1')
    assert (status, body) == (204, b'') and 'content-length' not in headers
    assert api(port, 'DELETE', '/kv/a1')[::2] == (404, {'error': 'not found'})
    assert api(port, 'GET', '/kv/a1')[0] == 404
    wait_until(lambda: stats(ports)['wsgi']['api.requests'] >= 18, what='api.requests')


def test_tcp_and_api_share_one_store(service):
    _, ports = service
    for n in range(4):  # several connections and requests: both workers of each
        key = 'shared%d' % n
        assert tcp_lines(ports['tcp'], b'SET %s from tcp %d' % (key.encode(), n)) == [b'OK']
        assert api(ports['wsgi'], 'GET', '/kv/' + key)[::2] == (200, {'key': key, 'value': 'from tcp %d' % n})
        assert api(ports['wsgi'], 'PUT', '/kv/' + key, {'value': 'from http %d' % n})[0] == 200
        assert tcp_lines(ports['tcp'], b'GET ' + key.encode()) == [b'VALUE from http %d' % n]
        assert tcp_lines(ports['tcp'], b'DEL ' + key.encode()) == [b'DELETED']
        assert api(ports['wsgi'], 'GET', '/kv/' + key)[0] == 404
    tcp = stats(ports)['tcp']
    assert tcp['0']['connection_count'] > 0 and tcp['1']['connection_count'] > 0


def test_udp_statsd_counters(service):
    _, ports = service
    # Per datagram: requests +2, logins +2 (1 at a 0.5 sample rate), errors +0
    # (0 is a count), one unknown name, three malformed lines, one empty.
    datagram = b'requests:2|c\nlogins:1|c|@0.5\nerrors:0|c\nsignups:1|c\nnot a line\nrequests:-1|c\ntemp:3|g\n'
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        def received() -> Optional[dict]:
            udp = stats(ports)['udp']
            if udp['datagram_count'] >= 3:
                return udp
            sock.sendto(datagram, ('127.0.0.1', ports['udp']))  # UDP may drop: send until 3 arrived
            return None
        wait_until(received, 20, 0.1, what='three datagrams counted')

    def consistent() -> Optional[dict]:
        udp = stats(ports)['udp']
        n = udp['datagram_count']
        expected = {'requests': 2 * n, 'logins': 2 * n, 'errors': 0, 'statsd_unknown': n, 'statsd_malformed': 3 * n}
        return udp if {name: udp[name] for name in expected} == expected else None
    udp = wait_until(consistent, what='the counters of every datagram received')
    assert udp['0']['requests'] == udp['requests']


def test_snapshot_daemon_writes_the_store(service):
    brimd, ports = service
    snapshot = brimd.dir / 'snapshot.json'
    assert api(ports['wsgi'], 'PUT', '/kv/snap1', {'value': 'in the snapshot'})[0] in (200, 201)
    assert tcp_lines(ports['tcp'], b'SET snap2 also') == [b'OK']

    def written() -> Optional[dict]:
        try:
            document = json.loads(snapshot.read_text())
        except (OSError, ValueError):
            return None
        return document if {'snap1', 'snap2'} <= set(document['items']) else None
    document = wait_until(written, 30, 0.2, what='a snapshot with both keys')
    assert document['items']['snap1'] == 'in the snapshot' and document['items']['snap2'] == 'also'
    assert isinstance(document['time'], int) and set(document) == {'time', 'items'}
    first = stats(ports)['daemons']['snapshot']
    assert first['snapshots'] >= 1 and first['last_snapshot'] >= document['time'] and first['keys'] >= 2
    later = wait_until(lambda: (lambda d: d if d['snapshots'] > first['snapshots'] else None)(
        stats(ports)['daemons']['snapshot']), 30, 0.2, what='another snapshot')
    assert later['last_snapshot'] >= first['last_snapshot']


def test_snapshot_survives_sigkill_mid_write(tmp_path):
    # Every snapshot now takes 3 s to write, and the next starts 0.2 s later.
    brimd, ports = deploy(tmp_path, '[snapshot]\ninterval = 0.2\nwrite_delay = 3\n')
    (tmp_path / 'data').mkdir()
    (tmp_path / 'data' / 'before').write_text('old')  # the store format: one file per key
    snapshot, partial = tmp_path / 'snapshot.json', tmp_path / 'snapshot.json.tmp'
    try:
        start(brimd, ports)
        first = wait_until(lambda: snapshot.exists() and snapshot.read_bytes(), 30, 0.05, what='the first snapshot')
        assert json.loads(first)['items'] == {'before': 'old'}
        assert api(ports['wsgi'], 'PUT', '/kv/after', {'value': 'new'})[0] == 201

        def mid_write() -> Optional[bytes]:
            """The current snapshot, while the next one is half-written."""
            try:
                half = partial.read_bytes()
            except FileNotFoundError:
                return None
            return snapshot.read_bytes() if half and not _is_json(half) else None
        previous = wait_until(mid_write, 30, 0.01, what='the next snapshot half-written')
        assert 'before' in json.loads(previous)['items']
        victim = stats(ports)['daemons']['snapshot']['pid']
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not alive(victim), what='the daemon to die')
        # The snapshot is still the complete previous one; the .tmp is half.
        assert snapshot.read_bytes() == previous
        assert not _is_json(partial.read_bytes())
        brimd.wait_log('(pid %d) exited: signal SIGKILL' % victim)

        def restarted() -> Optional[dict]:
            daemon = stats(ports)['daemons']['snapshot']
            return daemon if daemon['pid'] not in (0, victim) else None
        daemon = wait_until(restarted, 30, 0.1, what='a new snapshot daemon')
        assert daemon['restart_count'] >= 1 and daemon['last_exit'] == 128 + signal.SIGKILL

        def new_snapshot() -> Optional[dict]:
            data = snapshot.read_bytes()
            document = json.loads(data)  # always complete JSON
            # Changed since the kill: only the new daemon can have written it.
            return document if data != previous and 'after' in document['items'] else None
        document = wait_until(new_snapshot, 30, 0.05, what='a complete snapshot from the new daemon')
        assert document['items'] == {'before': 'old', 'after': 'new'}
        assert document['time'] >= json.loads(previous)['time']
        wait_until(lambda: stats(ports)['daemons']['snapshot']['keys'] == 2, what='keys = 2 in /stats')
    finally:
        brimd.cleanup()


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True

