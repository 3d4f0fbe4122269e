"""wsgi_basic_auth in front of wsgi_fs and wsgi_stats, in a real brimd (SPEC §7, §8).

One worker per deployment, so every request of a test meets the same
process: its auth-file state, its cache of good credentials, its green
threads.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
import time
from email.utils import formatdate

import bcrypt
import pytest

from harness import free_port, http_request, port_accepts, wait_until

#: wsgi_basic_auth's promise (SPEC §8): a changed auth file is picked up within this many seconds.
RELOAD_PROMISE = 10

CONF = """
[wsgi]
port = %(port)d
workers = 1
apps = auth files stats

[auth]
call = brim.wsgi_basic_auth.WSGIBasicAuth
auth_path = %(auth_path)s
realm = Test Realm

[files]
call = brim.wsgi_fs.WSGIFS
path = /files
serve_path = %(serve_path)s

[stats]
call = brim.wsgi_stats.WSGIStats
"""

SECRET = b'TOP-SECRET-CONTENT-never-served'
CONTENT = b'0123456789abcdefghij' * 50  # 1000 bytes
CHALLENGE = 'Basic realm="Test Realm", charset="UTF-8"'


def hash_password(password: str, rounds: int = 4) -> str:
    # Cost 4, the minimum, keeps the tests fast; the slow test asks for more.
    return bcrypt.hashpw(password.encode('utf-8'), bcrypt.gensalt(rounds)).decode()


def basic(user_pass: str) -> dict:
    return {'Authorization': 'Basic ' + base64.b64encode(user_pass.encode('utf-8')).decode('ascii')}


ALICE = basic('alice:wonderland')


def deploy(brimd, users: dict) -> int:
    """Write the auth file, a served tree with a secret beside it, and the conf; start brimd."""
    root = brimd.dir / 'root'
    www = root / 'www'
    (www / 'sub').mkdir(parents=True)
    (www / 'page.txt').write_bytes(CONTENT)
    (www / 'sub' / 'inner.txt').write_bytes(b'inner\n')
    (root / 'secret.txt').write_bytes(SECRET)
    os.symlink('../secret.txt', www / 'leak.txt')  # a symlink leaving the tree
    os.symlink(str(root), www / 'up')  # a directory symlink leaving the tree
    os.symlink('sub/inner.txt', www / 'alias.txt')  # a symlink staying inside
    write_users(brimd.dir / 'auth', users)
    port = free_port()
    brimd.write_conf(CONF % dict(port=port, auth_path=brimd.dir / 'auth', serve_path=www))
    brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    return port


def write_users(path, users: dict) -> None:
    # Write then rename: the worker never sees a half-written file.
    tmp = path.with_name(path.name + '.tmp')
    tmp.write_text('# test users\n' + ''.join('%s %s\n' % item for item in users.items()))
    os.replace(tmp, path)


def raw_request(port: int, target: bytes, headers: bytes = b'') -> tuple[int, bytes]:
    """Send ``GET target`` exactly as given (no client-side normalising); return (status, whole response)."""
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(b'GET ' + target + b' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n' + headers + b'\r\n')
        response = b''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            response += chunk
    return int(response.split(b' ', 2)[1]), response


def access_lines(brimd, needle: str) -> list[str]:
    return [line for line in brimd.log().splitlines() if needle in line and ' HTTP/1.1 ' in line]


def test_basic_auth_401_200_and_access_log(brimd):
    port = deploy(brimd, {'alice': hash_password('wonderland'), 'bob': hash_password('p\u00e4ss:word')})
    for headers in [{}, basic('alice:wrong'), basic('mallory:wonderland'), basic('alice:'),
                    {'Authorization': 'Basic !!!not base64!!!'}, {'Authorization': 'Basic'},
                    {'Authorization': 'Bearer abc'}, {'Authorization': 'Basic ' + base64.b64encode(b'nocolon').decode()},
                    {'Authorization': 'Basic ' + base64.b64encode(b'alice:\xff\xfe').decode()}]:
        status, got, body = http_request(port, path='/files/page.txt', headers=headers)
        assert status == 401, (headers, status, body)
        assert got['www-authenticate'] == CHALLENGE
        assert CONTENT not in body
    # A header that isn't even latin-1-clean text, straight onto the wire.
    status, response = raw_request(port, b'/files/page.txt', b'Authorization: Basic \xff\xfe\x80==\r\n')
    assert status == 401 and CONTENT not in response

    status, got, body = http_request(port, path='/files/page.txt?who=alice', headers=ALICE)
    assert (status, body) == (200, CONTENT)
    assert http_request(port, path='/files/page.txt', headers=basic('bob:p\u00e4ss:word'))[0] == 200
    assert http_request(port, path='/stats', headers=ALICE)[0] == 200  # the app after files
    assert http_request(port, path='/stats')[0] == 401

    line = wait_until(lambda: access_lines(brimd, '/files/page.txt?who=alice'), what='access line')[0]
    fields = line.split()
    # REMOTE_USER and brim.authenticated_user are both in the line.
    assert fields.count('alice') == 2, line
    denied = wait_until(lambda: [line for line in access_lines(brimd, 'GET /stats ') if ' 401 ' in line],
                        what='401 access line')
    assert not any(' alice ' in line for line in denied), denied


def test_files_served_with_length_range_conditional_and_head(brimd):
    port = deploy(brimd, {'alice': hash_password('wonderland')})
    status, headers, body = http_request(port, path='/files/page.txt', headers=ALICE)
    assert (status, body) == (200, CONTENT)
    assert headers['content-length'] == '1000'
    assert headers['content-type'] == 'text/plain; charset=utf-8'
    assert headers['accept-ranges'] == 'bytes'
    last_modified = headers['last-modified']

    status, headers, body = http_request(port, path='/files/page.txt', headers=dict(ALICE, Range='bytes=10-19'))
    assert (status, body) == (206, CONTENT[10:20])
    assert headers['content-range'] == 'bytes 10-19/1000' and headers['content-length'] == '10'
    status, headers, body = http_request(port, path='/files/page.txt', headers=dict(ALICE, Range='bytes=-5'))
    assert (status, body, headers['content-range']) == (206, CONTENT[-5:], 'bytes 995-999/1000')
    status, headers, body = http_request(port, path='/files/page.txt', headers=dict(ALICE, Range='bytes=1000-'))
    assert status == 416 and headers['content-range'] == 'bytes */1000'
    assert CONTENT not in body

    status, headers, body = http_request(port, path='/files/page.txt',
                                         headers=dict(ALICE, **{'If-Modified-Since': last_modified}))
    assert (status, body) == (304, b'')
    earlier = formatdate(time.time() - 86400 * 365, usegmt=True)
    status, _, body = http_request(port, path='/files/page.txt', headers=dict(ALICE, **{'If-Modified-Since': earlier}))
    assert (status, body) == (200, CONTENT)

    status, headers, body = http_request(port, 'HEAD', '/files/page.txt', headers=ALICE)
    assert (status, body, headers['content-length']) == (200, b'', '1000')
    status, response = raw_request(port, b'/files/page.txt', b'Authorization: %s\r\n' % ALICE['Authorization'].encode())
    assert status == 200 and response.endswith(b'\r\n\r\n' + CONTENT)

    # A symlink whose target stays inside the tree is followed; a directory lists.
    assert http_request(port, path='/files/alias.txt', headers=ALICE)[2] == b'inner\n'
    status, _, listing = http_request(port, path='/files/', headers=ALICE)
    assert status == 200 and b'page.txt' in listing and b'leak.txt' not in listing


TRAVERSALS = [
    b'/files/../secret.txt',
    b'/files/..%2fsecret.txt',
    b'/files/..%2f..%2fetc/passwd',
    b'/files/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd',
    b'/files/%2e%2e/secret.txt',
    b'/files/%2E%2E%2Fsecret.txt',
    b'/files/sub/%2e%2e/%2e%2e/secret.txt',
    b'/files/.%2e/secret.txt',
    b'/files/..\\secret.txt',
    b'/files/..%5csecret.txt',
    b'/files/sub\\..\\..\\secret.txt',
    b'/files/page.txt%00',
    b'/files/%00../secret.txt',
    b'/files//etc/passwd',
    b'/files/%2fetc%2fpasswd',
    b'/files/%2f%2e%2e%2fsecret.txt',
    b'/files/leak.txt',
    b'/files/up/secret.txt',
    b'/files/up/',
    b'/files/./leak.txt',
    b'/files/%c0%ae%c0%ae/secret.txt',
]


def test_traversal_attempts_never_leave_the_tree(brimd):
    port = deploy(brimd, {'alice': hash_password('wonderland')})
    auth = b'Authorization: %s\r\n' % ALICE['Authorization'].encode()
    for target in TRAVERSALS:
        status, response = raw_request(port, target, auth)
        assert status in (403, 404), (target, response[:200])
        assert SECRET not in response and b'root:' not in response, target
    # Absolute-form request targets (RFC 9112 section 3.2.2) too.
    for target in [b'http://x/etc/passwd', b'http://x/files/../secret.txt', b'http://x/files/%2e%2e/secret.txt']:
        status, response = raw_request(port, target, auth)
        assert status in (400, 403, 404), (target, response[:200])
        assert SECRET not in response and b'root:' not in response, target
    # The server is fine afterwards.
    assert http_request(port, path='/files/page.txt', headers=ALICE)[2] == CONTENT


def test_changed_auth_file_picked_up_and_deleted_file_fails_closed(brimd):
    auth_path = brimd.dir / 'auth'
    port = deploy(brimd, {'alice': hash_password('wonderland')})
    assert http_request(port, path='/files/page.txt', headers=ALICE)[0] == 200
    assert http_request(port, path='/files/page.txt', headers=ALICE)[0] == 200  # now cached too

    write_users(auth_path, {'alice': hash_password('looking-glass'), 'carol': hash_password('c')})
    changed = time.monotonic()
    wait_until(lambda: http_request(port, path='/files/page.txt', headers=basic('alice:looking-glass'))[0] == 200,
               RELOAD_PROMISE, 0.2, 'the new password to work')
    assert time.monotonic() - changed < RELOAD_PROMISE
    assert http_request(port, path='/files/page.txt', headers=ALICE)[0] == 401  # the cached old one is gone
    assert http_request(port, path='/files/page.txt', headers=basic('carol:c'))[0] == 200

    good = auth_path.read_text()
    auth_path.unlink()
    deleted = time.monotonic()
    wait_until(lambda: http_request(port, path='/files/page.txt', headers=basic('carol:c'))[0] == 401,
               RELOAD_PROMISE, 0.2, 'good credentials to be refused')
    assert time.monotonic() - deleted < RELOAD_PROMISE
    time.sleep(1.5)  # past the next look at the file: it is still missing
    for _ in range(5):
        status, headers, _ = http_request(port, path='/files/page.txt', headers=basic('alice:looking-glass'))
        assert status == 401 and headers['www-authenticate'] == CHALLENGE
    errors = [line for line in brimd.log().splitlines() if 'cannot read auth file' in line]
    assert len(errors) == 1, errors
    assert str(auth_path) in errors[0] and '401' in errors[0]

    auth_path.write_text(good)
    wait_until(lambda: http_request(port, path='/files/page.txt', headers=basic('carol:c'))[0] == 200,
               RELOAD_PROMISE, 0.2, 'the restored file to work')
    brimd.wait_log('usable again')
    assert len([line for line in brimd.log().splitlines() if 'cannot read auth file' in line]) == 1


def test_slow_bcrypt_check_does_not_stall_other_requests(brimd):
    # Cost 13: about half a second per check on a current CPU, much longer
    # than a cached check or a 401 takes.
    port = deploy(brimd, {'alice': hash_password('wonderland'), 'slow': hash_password('slowpoke', 13)})
    assert http_request(port, path='/files/page.txt', headers=ALICE)[0] == 200  # remembered from now on
    finished: list[str] = []
    results: dict[str, int] = {}

    def fetch(name: str, headers: dict) -> None:
        results[name] = http_request(port, path='/files/page.txt', headers=headers, timeout=30)[0]
        finished.append(name)

    slow = threading.Thread(target=fetch, args=('slow', basic('slow:slowpoke')))
    slow.start()
    try:
        time.sleep(0.1)  # let the slow request reach bcrypt
        fetch('cached', ALICE)
        fetch('anonymous', {})
    finally:
        slow.join(30)
    assert results == {'slow': 200, 'cached': 200, 'anonymous': 401}
    # The worker answered both while bcrypt ran for the slow one.
    assert finished == ['cached', 'anonymous', 'slow']


@pytest.mark.parametrize('method', ['POST', 'DELETE'])
def test_other_methods_after_auth(brimd, method):
    port = deploy(brimd, {'alice': hash_password('wonderland')})
    assert http_request(port, method, '/files/page.txt', body=b'x')[0] == 401
    status, headers, _ = http_request(port, method, '/files/page.txt', body=b'x', headers=ALICE)
    assert status == 405 and headers['allow'] == 'GET, HEAD'


def test_relative_paths_in_app_sections_are_from_where_brimd_started(brimd):
    """Workers run in ``/``; a relative path in an app's section still means
    the directory ``brimd start`` ran in, as ``pid_file`` and ``log_file`` do."""
    (brimd.dir / 'site').mkdir()
    (brimd.dir / 'site' / 'hello.txt').write_text('hello from a relative path\n')
    port = free_port()
    brimd.write_conf('[brim]\npid_file = brimd.pid\nlog_file = brimd.log\n[wsgi]\nport = %d\napps = files\n'
                     '[files]\ncall = brim.wsgi_fs.WSGIFS\nserve_path = site\n' % port)
    brimd.cwd = brimd.dir
    brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    status, _, body = http_request(port, path='/hello.txt')
    assert (status, body) == (200, b'hello from a relative path\n')
