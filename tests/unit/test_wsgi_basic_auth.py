"""Tests for brim.wsgi_basic_auth: credentials, the auth file and its reloading, conf."""

import base64
import logging
import os
import subprocess
import sys
import time
from wsgiref.util import setup_testing_defaults

import bcrypt
import pytest

from brim.conf import Conf
from brim.errors import ConfError
from brim.wsgi_basic_auth import CACHE_TTL, WSGIBasicAuth, parse_auth_file, parse_authorization


def hash_password(password):
    # Cost 4, the minimum, keeps the tests fast.
    return bcrypt.hashpw(password.encode('utf-8'), bcrypt.gensalt(4)).decode()


ALICE = hash_password('wonderland')
BOB = hash_password('p\u00e4ss:word')
LONG = hash_password('x' * 72)


class FakeStats:
    def __init__(self):
        self.values = {}

    def incr(self, name):
        self.values[name] = self.values.get(name, 0) + 1


def next_app(env, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('user=%s type=%s' % (env.get('REMOTE_USER'), env.get('AUTH_TYPE'))).encode()]


@pytest.fixture
def auth_file(tmp_path):
    path = tmp_path / 'auth'
    path.write_text('# users\n\nalice %s\nbob   %s\nlong %s\n' % (ALICE, BOB, LONG))
    return path


def make_app(auth_file, **conf):
    return WSGIBasicAuth('auth', dict({'auth_path': str(auth_file), 'realm': 'Test Realm'}, **conf), next_app)


def basic(user_pass):
    if isinstance(user_pass, str):
        user_pass = user_pass.encode('utf-8')
    return 'Basic ' + base64.b64encode(user_pass).decode('ascii')


def request(app, authorization=None, extra_env=None):
    env = dict(extra_env or {}, REQUEST_METHOD='GET', PATH_INFO='/')
    if authorization is not None:
        env['HTTP_AUTHORIZATION'] = authorization
    setup_testing_defaults(env)
    seen = {}

    def start_response(status, headers, exc_info=None):
        seen['status'] = int(status.split()[0])
        seen['headers'] = dict(headers)

    body = b''.join(app(env, start_response))
    return seen['status'], seen['headers'], body, env


@pytest.mark.parametrize('authorization, user', [
    (basic('alice:wonderland'), 'alice'),
    (basic('bob:p\u00e4ss:word'), 'bob'),
    ('basic ' + basic('alice:wonderland')[6:], 'alice'),
    ('BASIC  ' + basic('alice:wonderland')[6:] + ' ', 'alice'),
    (basic('long:' + 'x' * 72), 'long'),
    (basic('long:' + 'x' * 72 + 'ignored past 72 bytes, as bcrypt does'), 'long'),
])
def test_good_credentials_pass_with_remote_user(auth_file, authorization, user):
    status, headers, body, env = request(make_app(auth_file), authorization)
    assert status == 200
    assert body == ('user=%s type=Basic' % user).encode()
    assert env['REMOTE_USER'] == user
    assert env['brim.authenticated_user'] == user


@pytest.mark.parametrize('authorization', [
    None,
    '',
    basic('alice:wrong'),
    basic('alice:'),
    basic('alice:wonderlandX'),
    basic('ALICE:wonderland'),
    basic('mallory:wonderland'),
    basic(':wonderland'),
    basic('alice'),
    basic('users:' + 'x' * 200),
    basic(b'alice:\xffwonderland'),
    'Bearer ' + basic('alice:wonderland')[6:],
    'Basic',
    'Basic ',
    'Basic !!!not-base64!!!',
    'Basic ' + basic('alice:wonderland')[6:-2],
    'Basic \u00e9\u00e9\u00e9\u00e9',
    'Digest username="alice"',
    'alice:wonderland',
])
def test_bad_or_malformed_credentials_are_401(auth_file, authorization):
    stats = FakeStats()
    status, headers, body, env = request(make_app(auth_file), authorization, {'brim.stats': stats})
    assert status == 401
    assert headers['WWW-Authenticate'] == 'Basic realm="Test Realm", charset="UTF-8"'
    assert b'user=' not in body
    assert 'REMOTE_USER' not in env
    assert 'brim.authenticated_user' not in env
    assert stats.values == {'auth.requests': 1, 'auth.denied': 1}


def test_realm_is_quoted(auth_file):
    app = make_app(auth_file, realm='say "hi" \\ there')
    assert request(app)[1]['WWW-Authenticate'] == r'Basic realm="say \"hi\" \\ there", charset="UTF-8"'


def test_head_401_has_no_body(auth_file):
    app = make_app(auth_file)
    env = {'REQUEST_METHOD': 'HEAD'}
    setup_testing_defaults(env)
    assert b''.join(app(env, lambda *args: None)) == b''


def test_stats_on_success(auth_file):
    stats = FakeStats()
    request(make_app(auth_file), basic('alice:wonderland'), {'brim.stats': stats})
    assert stats.values == {'auth.requests': 1}
    assert WSGIBasicAuth.stats_conf('auth', {}) == [('auth.requests', 'sum'), ('auth.denied', 'sum')]


def test_repeated_success_uses_cache_but_not_for_wrong_password(auth_file):
    app = make_app(auth_file)
    for _ in range(3):
        assert request(app, basic('alice:wonderland'))[0] == 200
    assert len(app._verified) == 1
    assert request(app, basic('alice:wonderlan'))[0] == 401


class CountingCheck:
    def __init__(self, during=None):
        self.calls = 0
        self.during = during

    def __call__(self, password, hashed):
        self.calls += 1
        if self.during:
            self.during()
        return bcrypt.checkpw(password, hashed)


def test_repeat_success_skips_bcrypt_until_ttl(auth_file):
    app = make_app(auth_file)
    app.checkpw = counting = CountingCheck()
    for _ in range(3):
        assert request(app, basic('alice:wonderland'))[0] == 200
    assert counting.calls == 1
    assert request(app, basic('alice:wrong'))[0] == 401
    assert request(app, basic('alice:wrong'))[0] == 401  # failures are never remembered
    assert counting.calls == 3
    # Time passes: the entry expires and bcrypt is paid again, once.
    (key, (stored, _expiry)), = app._verified.items()
    app._verified[key] = (stored, time.monotonic() - 1)
    assert request(app, basic('alice:wonderland'))[0] == 200
    assert request(app, basic('alice:wonderland'))[0] == 200
    assert counting.calls == 4
    assert app._verified[key][1] > time.monotonic() + CACHE_TTL - 60


def test_cache_never_holds_the_password(auth_file):
    app = make_app(auth_file)
    request(app, basic('alice:wonderland'))
    (user, digest), = app._verified
    assert user == 'alice' and len(digest) == 32 and b'wonderland' not in digest


def test_cache_size_is_bounded_oldest_dropped_first(tmp_path):
    path = tmp_path / 'auth'
    path.write_text(''.join('u%d %s\n' % (number, ALICE) for number in range(5)))
    app = make_app(path, cache_size=3)
    app.checkpw = counting = CountingCheck()
    for number in range(5):
        assert request(app, basic('u%d:wonderland' % number))[0] == 200
    assert [user for user, _digest in app._verified] == ['u2', 'u3', 'u4']
    assert request(app, basic('u4:wonderland'))[0] == 200
    assert request(app, basic('u0:wonderland'))[0] == 200
    assert counting.calls == 6
    assert len(app._verified) == 3


def test_expired_entries_are_dropped_first(tmp_path):
    path = tmp_path / 'auth'
    path.write_text(''.join('u%d %s\n' % (number, ALICE) for number in range(3)))
    app = make_app(path, cache_size=100)
    for number in range(3):
        request(app, basic('u%d:wonderland' % number))
    for key in list(app._verified)[:2]:
        app._verified[key] = (app._verified[key][0], 0.0)
    request(app, basic('u0:wonderland'))  # expired: checked again, re-remembered last
    assert [user for user, _digest in app._verified] == ['u2', 'u0']


def test_no_cache_when_disabled(auth_file):
    app = make_app(auth_file, cache_ttl=0)
    app.checkpw = counting = CountingCheck()
    request(app, basic('alice:wonderland'))
    request(app, basic('alice:wonderland'))
    assert counting.calls == 2 and not app._verified


@pytest.mark.parametrize('new_alice, expected', [(ALICE, 200), (hash_password('other'), 401)])
def test_reload_during_a_check_is_not_remembered(auth_file, new_alice, expected):
    app = make_app(auth_file, check_interval=0)

    def reload():
        auth_file.write_text('alice %s\n' % new_alice)
        set_mtime_later(auth_file)
        app._maybe_reload(logging.getLogger('test_wsgi_basic_auth'))

    app.checkpw = CountingCheck(during=reload)
    assert request(app, basic('alice:wonderland'))[0] == expected
    assert not app._verified


def test_run_off_loop_without_eventlet_is_a_plain_call():
    script = (
        'import sys, threading\n'
        'from brim.wsgi_basic_auth import run_off_loop\n'
        'assert run_off_loop(lambda a, b: (a + b, threading.get_ident()), 1, 2) == (3, threading.get_ident())\n'
        'assert "eventlet" not in sys.modules\n')
    subprocess.run([sys.executable, '-W', 'error', '-c', script], check=True, timeout=60)


SLOW_CHECK_SCRIPT = r"""
import sys, time, warnings
with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import eventlet
from brim.wsgi_basic_auth import WSGIBasicAuth
auth_path, header = sys.argv[1], sys.argv[2]
app = WSGIBasicAuth('auth', {'auth_path': auth_path, 'check_interval': 0}, lambda env, sr: [b'ok'])
events = []

def slow():
    env = {'REQUEST_METHOD': 'GET', 'HTTP_AUTHORIZATION': header}
    events.append(('slow done', b''.join(app(env, lambda *a: None)), app._verified != {}))

def ticker():
    for _ in range(5):
        eventlet.sleep(0.01)
        events.append(('tick',))

threads = [eventlet.spawn(slow), eventlet.spawn(ticker)]
for thread in threads:
    thread.wait()
print(events)
assert events[-1] == ('slow done', b'ok', True), events
assert events[:5] == [('tick',)] * 5, events
"""


def test_run_off_loop_under_eventlet_keeps_green_threads_running(tmp_path):
    # Cost 13 takes about half a second: ticks every 10 ms all come first
    # unless bcrypt blocks the hub.
    path = tmp_path / 'auth'
    path.write_text('slow %s\n' % bcrypt.hashpw(b'slowpoke', bcrypt.gensalt(13)).decode())
    result = subprocess.run([sys.executable, '-c', SLOW_CHECK_SCRIPT, str(path), basic('slow:slowpoke')],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_module_does_not_import_eventlet():
    script = 'import sys, brim.wsgi_basic_auth\nassert "eventlet" not in sys.modules\n'
    subprocess.run([sys.executable, '-c', script], check=True, timeout=60)


def test_changed_file_picked_up(auth_file):
    app = make_app(auth_file, check_interval=0)
    assert request(app, basic('alice:wonderland'))[0] == 200
    auth_file.write_text('alice %s\ncarol %s\n' % (hash_password('new'), hash_password('c')))
    # Same second, maybe same size: push mtime forward so the change shows.
    later = os.stat(auth_file).st_mtime + 5
    os.utime(auth_file, (later, later))
    assert request(app, basic('alice:wonderland'))[0] == 401  # cached success dropped
    assert request(app, basic('alice:new'))[0] == 200
    assert request(app, basic('carol:c'))[0] == 200
    assert request(app, basic('bob:p\u00e4ss:word'))[0] == 401


def test_file_checked_at_most_every_interval(auth_file):
    app = make_app(auth_file, check_interval=3600)
    assert request(app, basic('alice:wonderland'))[0] == 200
    auth_file.write_text('carol %s\n' % hash_password('c'))
    assert request(app, basic('carol:c'))[0] == 401
    app._next_check = 0  # the interval has passed
    assert request(app, basic('carol:c'))[0] == 200


def test_default_interval_keeps_the_10s_promise(auth_file, tmp_path):
    conf = Conf({'auth': {'auth_path': str(auth_file)}})
    parsed = WSGIBasicAuth.parse_conf('auth', conf)
    assert 0 < parsed['check_interval'] <= 10


class Records(logging.Handler):
    """Collects (level name, message) of the records logged to a logger of its own."""

    def __init__(self, name):
        super().__init__()
        self.records = []
        self.logger = logging.getLogger(name)
        self.logger.addHandler(self)
        self.logger.propagate = False
        self.logger.setLevel(logging.DEBUG)

    def emit(self, record):
        self.records.append((record.levelname, record.getMessage()))

    def at(self, level):
        return [message for levelname, message in self.records if levelname == level]


@pytest.fixture
def records(request):
    handler = Records('test_wsgi_basic_auth.' + request.node.name)
    yield handler
    handler.logger.removeHandler(handler)


def set_mtime_later(path, seconds=5):
    later = os.stat(path).st_mtime + seconds
    os.utime(path, (later, later))


@pytest.mark.parametrize('break_it', ['delete', 'unreadable', 'not utf-8', 'nul', 'no valid line'])
def test_broken_file_fails_closed_logs_once_and_recovers(auth_file, records, break_it):
    app = make_app(auth_file, check_interval=0)
    env = {'brim.logger': records.logger}
    good = auth_file.read_text()
    assert request(app, basic('alice:wonderland'), env)[0] == 200
    assert app._verified
    if break_it == 'delete':
        auth_file.unlink()
    elif break_it == 'unreadable':
        if os.geteuid() == 0:
            pytest.skip('root reads any file')
        auth_file.chmod(0)
    elif break_it == 'not utf-8':
        auth_file.write_bytes(b'alice \xff\xfe' + ALICE.encode() + b'\n')
    elif break_it == 'nul':
        auth_file.write_bytes(b'\0' * 40)
    else:
        auth_file.write_text('alice\nbob %s extra\n' % BOB)
    for _ in range(5):
        status, headers, _body, env_seen = request(app, basic('alice:wonderland'), env)
        assert status == 401
        assert 'WWW-Authenticate' in headers
        assert 'REMOTE_USER' not in env_seen
    assert not app._verified  # cleared: nothing remembered survives the failure
    errors = records.at('ERROR')
    assert len(errors) == 1, records.records  # logged on the transition, not per request
    assert repr(str(auth_file)) in errors[0] and '401' in errors[0]
    if break_it == 'unreadable':
        auth_file.chmod(0o600)
    else:
        auth_file.write_text(good)
        set_mtime_later(auth_file)
    assert request(app, basic('alice:wonderland'), env)[0] == 200
    assert request(app, basic('bob:p\u00e4ss:word'), env)[0] == 200
    assert any('usable again' in message for message in records.at('NOTICE'))
    assert len(records.at('ERROR')) == 1


def test_each_new_failure_reason_is_logged_once(auth_file, records):
    app = make_app(auth_file, check_interval=0)
    env = {'brim.logger': records.logger}
    auth_file.unlink()
    request(app, basic('alice:wonderland'), env)
    request(app, basic('alice:wonderland'), env)
    auth_file.write_bytes(b'\xff\n')
    request(app, basic('alice:wonderland'), env)
    request(app, basic('alice:wonderland'), env)
    errors = records.at('ERROR')
    assert len(errors) == 2
    assert 'cannot read' in errors[0] and 'not text' in errors[1]


def test_unchanged_content_keeps_the_cache(auth_file):
    app = make_app(auth_file, check_interval=0)
    assert request(app, basic('alice:wonderland'))[0] == 200
    set_mtime_later(auth_file)  # touched, same bytes
    assert request(app, basic('alice:wonderland'))[0] == 200
    assert len(app._verified) == 1


def test_missing_file_at_start_denies_everyone(tmp_path):
    app = make_app(tmp_path / 'missing', check_interval=0)
    assert request(app, basic('alice:wonderland'))[0] == 401


def test_logger_from_env_is_used(auth_file):
    auth_file.write_text('alice not-a-hash\nbroken\n')
    records = []

    class Handler(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger('test_wsgi_basic_auth.env')
    logger.addHandler(Handler())
    logger.propagate = False
    request(make_app(auth_file), basic('alice:x'), {'brim.logger': logger})
    assert any('malformed lines 1, 2' in message for message in records)


@pytest.mark.parametrize('stored', ['$2b$12$tooshort', '$2b$99$' + 'a' * 53, '$2x$04$' + 'a' * 53])
def test_malformed_stored_hash_is_401_not_500(auth_file, stored):
    auth_file.write_text('alice %s\nbob %s\n' % (stored, BOB))
    app = make_app(auth_file)
    assert request(app, basic('alice:wonderland'))[0] == 401
    assert request(app, basic('bob:p\u00e4ss:word'))[0] == 200


H = '$2b$04$' + 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.'
Y = '$2y$12$' + '/' * 53


@pytest.mark.parametrize('text, users, bad', [
    ('a %s\n' % H, {'a': H.encode()}, []),
    ('# c\n\n  a   %s  \n\tb\t%s' % (H, Y), {'a': H.encode(), 'b': Y.encode()}, []),
    ('a\nb %s extra\nc plain\nd %s\n' % (H, Y), {'d': Y.encode()}, [1, 2, 3]),
    ('a $2b$04$x\nb %s\nc %s!\nd $2z$04$%s\ne $2b$4$%s\n' % (H + 'x', H[:-1], H[7:], H[7:]), {}, [1, 2, 3, 4, 5]),
    ('a \u00e9%s\n' % H[1:], {}, [1]),
    ('', {}, []),
])
def test_parse_auth_file(text, users, bad):
    assert parse_auth_file(text) == (users, bad)


@pytest.mark.parametrize('header, expected', [
    (basic('a:b'), ('a', b'b')),
    (basic('a:b:c'), ('a', b'b:c')),
    (basic('a:'), ('a', b'')),
    (basic('\u00e9:\u00e8'), ('\u00e9', '\u00e8'.encode())),
    (basic('nocolon'), None),
    (basic(':b'), None),
    (None, None), ('', None), ('Basic', None), ('Basic ===', None), ('Token abc', None),
])
def test_parse_authorization(header, expected):
    assert parse_authorization(header) == expected


def test_parse_conf(auth_file):
    parsed = WSGIBasicAuth.parse_conf('auth', Conf({'auth': {'auth_path': str(auth_file), 'realm': 'R'}}))
    assert parsed['auth_path'] == str(auth_file)
    assert parsed['realm'] == 'R'
    assert WSGIBasicAuth.parse_conf('auth', Conf({'auth': {'auth_path': str(auth_file)}}))['realm'] == 'brim'


@pytest.mark.parametrize('options, option', [
    ({}, 'auth_path'), ({'auth_path': '/nonexistent/brim/auth'}, 'auth_path'),
    ({'auth_path': 'AUTH', 'realm': 'a\nb'}, 'realm')])
def test_parse_conf_errors(auth_file, options, option):
    options = {key: str(auth_file) if value == 'AUTH' else value for key, value in options.items()}
    with pytest.raises(ConfError) as caught:
        WSGIBasicAuth.parse_conf('auth', Conf({'auth': options}))
    assert (caught.value.section, caught.value.option) == ('auth', option)
