"""Environment variables in the conf (issue 5): ``${NAME}`` and ``${NAME:-default}``.

A real brimd takes its port from its environment; an unset variable without
a default is one line on stderr naming it, exit 1, nothing started.
"""

from __future__ import annotations

import pytest

from harness import free_port, http_request, port_accepts, wait_until

CONF = ('[brim]\nlog_level = ${BRIM_TEST_LOG_LEVEL:-INFO}\n'
        '[wsgi]\nport = ${BRIM_TEST_PORT}\napps = echo\n'
        '[echo]\ncall = brim.wsgi_echo.WSGIEcho\npath = ${BRIM_TEST_ECHO_PATH:-/echo}\n')


def test_port_from_environment_is_served(brimd):
    port = free_port()
    brimd.env['BRIM_TEST_PORT'] = str(port)
    brimd.env.pop('BRIM_TEST_LOG_LEVEL', None)
    brimd.env['BRIM_TEST_ECHO_PATH'] = '/from-env'
    brimd.write_conf(CONF)

    check = brimd.run('check')
    assert check.returncode == 0, check.stderr
    assert check.stderr == ''
    # check shows the expanded values.
    assert '[wsgi] wsgi on 127.0.0.1:%d, 1 worker, apps: echo (brim.wsgi_echo.WSGIEcho)' % port in check.stdout
    assert '${' not in check.stdout

    brimd.start()
    wait_until(lambda: port_accepts(port), what='the port from BRIM_TEST_PORT')
    status, _, body = http_request(port, 'POST', '/from-env', b'hello')
    assert (status, body) == (200, b'hello')
    assert http_request(port, 'POST', '/echo', b'hello')[0] == 404
    stop = brimd.run('stop')
    assert stop.returncode == 0, stop.stderr


def test_default_used_when_variable_unset(brimd):
    port = free_port()
    brimd.env.pop('BRIM_TEST_PORT', None)
    brimd.write_conf('[wsgi]\nport = ${BRIM_TEST_PORT:-%d}\n' % port)
    check = brimd.run('check')
    assert check.returncode == 0, check.stderr
    assert '[wsgi] wsgi on 127.0.0.1:%d' % port in check.stdout


@pytest.mark.parametrize('command', ['check', 'start'])
def test_unset_variable_is_one_line_exit_1(brimd, command):
    brimd.env.pop('BRIM_TEST_PORT', None)
    brimd.write_conf(CONF)
    result = brimd.run(command)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [
        "brimd: [wsgi] port = '${BRIM_TEST_PORT}': environment variable BRIM_TEST_PORT is not set "
        '(give a default: ${BRIM_TEST_PORT:-value})']
    assert 'Traceback' not in result.stderr
    assert brimd.pid() is None  # nothing started


def test_malformed_reference_is_one_line_exit_1(brimd):
    brimd.write_conf('[wsgi]\nport = ${BRIM_TEST_PORT\n')
    result = brimd.run('check')
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.splitlines() == [
        "brimd: [wsgi] port = '${BRIM_TEST_PORT': '${' without a closing '}' (write $$ for a literal $)"]
