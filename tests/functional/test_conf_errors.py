"""Every mistake is one line on stderr naming where it is, exit 1, no traceback."""

from __future__ import annotations

import socket

import pytest

from harness import free_port

GOOD_WSGI = '[wsgi]\nport = %(port)d\napps = app\n\n[app]\ncall = %(call)s\n'

MODULES = {
    'wrong_init': 'class App:\n    def __init__(self, name, parsed_conf):\n        pass\n'
                  '    def __call__(self, env, start_response):\n        return []\n',
    'wrong_call': 'class App:\n    def __init__(self, name, parsed_conf, next_app):\n        pass\n'
                  '    def __call__(self, env):\n        return []\n',
    'no_call': 'class App:\n    def __init__(self, name, parsed_conf, next_app):\n        pass\n',
    'broken_import': 'import no_such_dependency_xyz\n\nclass App:\n    pass\n',
    'bad_parse': 'class App:\n    def __init__(self, name, parsed_conf, next_app):\n        pass\n'
                 '    def __call__(self, env, start_response):\n        return []\n'
                 '    @classmethod\n    def parse_conf(cls, name, conf):\n'
                 '        return {"size": conf.get_int(name, "size", 1)}\n',
    'tcp_wrong_call': 'class Handler:\n    def __init__(self, name, parsed_conf):\n        pass\n'
                      '    def __call__(self, subserver, stats, sock):\n        pass\n',
    'daemon_wrong_init': 'class Daemon:\n    def __init__(self, name):\n        pass\n'
                         '    def __call__(self, subserver, stats):\n        pass\n',
}

CASES = [
    # (id, conf, expected fragments of the one stderr line)
    ('workers-not-int', '[wsgi]\nport = %(port)d\nworkers = two\n', ["[wsgi] workers = 'two'", 'not an integer']),
    ('bad-bool', '[wsgi]\nport = %(port)d\nlog_headers = maybe\n', ["[wsgi] log_headers = 'maybe'", 'boolean']),
    ('bad-port', '[tcp]\nport = 99999\ncall = brim.tcp_echo.TCPEcho\n', ["[tcp] port = '99999'", 'port']),
    ('bad-level-in-brim', '[brim]\nlog_level = LOUD\n[wsgi]\nport = %(port)d\n', ["[brim] log_level = 'LOUD'"]),
    ('no-such-user', '[brim]\nuser = no_such_user_xyz\n[wsgi]\nport = %(port)d\n',
     ["[brim] user = 'no_such_user_xyz'", 'no such user']),
    ('call-missing-module', GOOD_WSGI.replace('%(call)s', 'nosuchpkg_xyz.App'),
     ["[app] call = 'nosuchpkg_xyz.App'", 'module nosuchpkg_xyz not found']),
    ('call-missing-class', GOOD_WSGI.replace('%(call)s', 'brim.wsgi_echo.Nope'),
     ["[app] call = 'brim.wsgi_echo.Nope'", 'has no Nope']),
    ('call-import-fails', GOOD_WSGI.replace('%(call)s', 'broken_import.App'),
     ["[app] call = 'broken_import.App'", 'importing broken_import failed',
      "No module named 'no_such_dependency_xyz'"]),
    ('wrong-constructor', GOOD_WSGI.replace('%(call)s', 'wrong_init.App'),
     ['[app] call', 'cannot be constructed as a WSGI app (name, parsed_conf, next_app)']),
    ('wrong-call-signature', GOOD_WSGI.replace('%(call)s', 'wrong_call.App'),
     ['[app] call', '__call__ cannot be called as a WSGI app (self, env, start_response)']),
    ('no-call', GOOD_WSGI.replace('%(call)s', 'no_call.App'), ['[app] call', 'has no __call__']),
    ('parse-conf-conversion', GOOD_WSGI.replace('%(call)s', 'bad_parse.App') + 'size = big\n',
     ["[app] size = 'big'", 'int']),
    ('tcp-wrong-call', '[tcp]\nport = %(port)d\ncall = tcp_wrong_call.Handler\n',
     ['[tcp] call', 'TCP handler (self, subserver, stats, sock, ip, port)']),
    ('daemon-wrong-init', '[daemons]\ndaemons = d\n[d]\ncall = daemon_wrong_init.Daemon\n',
     ['[d] call', 'daemon (name, parsed_conf)']),
    ('tcp-without-call', '[tcp]\nport = %(port)d\n', ['[tcp] call', 'missing']),
    ('app-section-missing', '[wsgi]\nport = %(port)d\napps = ghost\n', ['[wsgi] apps', '[ghost]']),
    ('nothing-to-run', '[brim]\nworkers = 2\n', ['nothing to run']),
    ('tls-files-missing', '[wsgi]\nport = %(port)d\ncertfile = /nonexistent/cert.pem\n',
     ['[wsgi] certfile', '/nonexistent/cert.pem']),
    ('pid-file-unwritable', '[brim]\npid_file = /nonexistent/dir/brimd.pid\n[wsgi]\nport = %(port)d\n',
     ["[brim] pid_file = '/nonexistent/dir/brimd.pid'", 'cannot write']),
    ('syntax-error', 'this is not ini\n[wsgi]\n', ['cannot parse', 'brimd.conf']),
]


def _deploy(brimd, conf):
    for name, source in MODULES.items():
        brimd.write_module(name, source)
    port = free_port()
    brimd.write_conf(conf % {'port': port}, defaults='syntax' not in conf and 'not ini' not in conf)
    return port


@pytest.mark.parametrize('conf,fragments', [case[1:] for case in CASES], ids=[case[0] for case in CASES])
@pytest.mark.parametrize('command', ['start', 'check'])
def test_bad_conf_is_one_line_exit_1(brimd, command, conf, fragments):
    _deploy(brimd, conf)
    if 'pid_file' in conf and command == 'check':
        pytest.skip('check only warns about the pid file directory')
    result = brimd.run(command)
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('brimd: ')
    for fragment in fragments:
        assert fragment in lines[0]
    assert 'Traceback' not in result.stderr
    assert brimd.pid() is None  # nothing started


def test_error_stack_trace_flag_shows_traceback(brimd):
    _deploy(brimd, GOOD_WSGI.replace('%(call)s', 'broken_import.App'))
    result = brimd.run('-x', 'start')
    assert result.returncode == 1
    assert 'Traceback' in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith('brimd: [app] call')


def test_missing_conf_file(brimd):
    result = brimd.run('start')  # brimd.conf was never written
    assert result.returncode == 1
    assert result.stderr.strip() == 'brimd: conf: no conf file could be read (tried %s)' % brimd.conf_path


def test_port_in_use_after_listen_retry(brimd):
    holder = socket.socket()
    holder.bind(('127.0.0.1', 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        brimd.write_conf('[wsgi]\nport = %d\nlisten_retry = 0.5\n' % port)
        result = brimd.run('start')
    finally:
        holder.close()
    assert result.returncode == 1
    line = result.stderr.strip()
    assert '\n' not in line
    assert '[wsgi]' in line and '127.0.0.1:%d' % port in line and 'in use' in line and '0.5 seconds' in line


def test_unknown_option_is_reported_as_likely_typo(brimd):
    port = free_port()
    brimd.write_conf('[wsgi]\nport = %d\nwrokers = 2\napps = echo\n[echo]\ncall = brim.wsgi_echo.WSGIEcho\n'
                     'max_echos = 5\n' % port)
    result = brimd.run('check')
    assert result.returncode == 0, result.stderr
    assert "[wsgi] wrokers = '2': unknown option (a typo? did you mean workers)" in result.stderr
    assert "[echo] max_echos = '5': unknown option (a typo? did you mean max_echo)" in result.stderr
    assert '[wsgi] wsgi on 127.0.0.1:%d, 1 worker, apps: echo (brim.wsgi_echo.WSGIEcho)' % port in result.stdout
