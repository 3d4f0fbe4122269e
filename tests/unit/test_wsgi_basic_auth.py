"""Tests for brim.wsgi_basic_auth: credentials, the auth file and its reloading, conf."""

import base64
import logging
import os
from wsgiref.util import setup_testing_defaults

import bcrypt
import pytest

from brim.conf import Conf
from brim.errors import ConfError
from brim.wsgi_basic_auth import WSGIBasicAuth, parse_auth_file, parse_authorization


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


def test_unreadable_file_keeps_last_users_and_logs(auth_file, caplog):
    app = make_app(auth_file, check_interval=0)
    assert request(app, basic('alice:wonderland'))[0] == 200
    auth_file.unlink()
    with caplog.at_level(logging.ERROR, logger='brim'):
        assert request(app, basic('alice:wonderland'))[0] == 200
    assert 'cannot read auth file' in caplog.text


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


def test_malformed_stored_hash_is_401_not_500(auth_file):
    auth_file.write_text('alice $2b$12$tooshort\n')
    assert request(make_app(auth_file), basic('alice:wonderland'))[0] == 401


@pytest.mark.parametrize('text, users, bad', [
    ('a $2b$04$x\n', {'a': b'$2b$04$x'}, []),
    ('# c\n\n  a   $2b$04$x  \n', {'a': b'$2b$04$x'}, []),
    ('a\nb $2b$x extra\nc plain\nd $2y$x\n', {'d': b'$2y$x'}, [1, 2, 3]),
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
