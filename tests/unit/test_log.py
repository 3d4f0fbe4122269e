"""Tests for brim.log: access-log quoting, exception lines, NOTICE, get_logger."""

import logging
import os
import re
import sys

import pytest

from brim import log
from brim.log import NOTICE, access_line, get_logger, quote_log_field, sysloggable_excinfo, utc_stamp


# ---- quote_log_field / access_line (SPEC §6) -----------------------------------

@pytest.mark.parametrize('value, expected', [
    ('plain', 'plain'),
    ('/path?q=1&x=y', '/path?q=1&x=y'),
    ('!~', '!~'),
    ('a b', 'a%20b'),
    ('  ', '%20%20'),
    ('100%', '100%25'),
    ('%20', '%2520'),
    ('a\nb', 'a%0Ab'),
    ('\r\t', '%0D%09'),
    ('\x00\x1f', '%00%1F'),
    ('\x7f', '%7F'),
    ('"quoted"', '"quoted"'),
    # str: Latin-1 where possible (WSGI environ strings, PEP 3333) ...
    ('\xe9', '%E9'),
    ('\xff', '%FF'),
    ('caf\xe9', 'caf%E9'),
    # ... else UTF-8 (the whole value).
    ('\u20ac', '%E2%82%AC'),
    ('\xe9\u20ac', '%C3%A9%E2%82%AC'),
    ('\U0001F600', '%F0%9F%98%80'),
    # bytes are quoted byte by byte.
    (b'abc', 'abc'),
    (b'a b%', 'a%20b%25'),
    (b'\xe2\x82\xac', '%E2%82%AC'),
    (b'\x00\xff', '%00%FF'),
    # empty and None are '-'.
    (None, '-'),
    ('', '-'),
    (b'', '-'),
    # other objects through str().
    (0, '0'),
    (200, '200'),
    (1.5, '1.5'),
    ('-', '-'),
])
def test_quote_log_field(value, expected):
    assert quote_log_field(value) == expected


@pytest.mark.parametrize('byte', range(256))
def test_quote_log_field_every_byte_is_safe(byte):
    quoted = quote_log_field(bytes([byte]))
    # Never a space, control char, non-ASCII or bare % in a field.
    assert all(0x21 <= ord(c) <= 0x7e for c in quoted)
    if 0x21 <= byte <= 0x7e and byte != 0x25:
        assert quoted == chr(byte)
    else:
        assert quoted == '%%%02X' % byte


@pytest.mark.parametrize('fields, expected', [
    (['1.2.3.4', None, 'GET', '/a b', 'HTTP/1.1', 200, 0], '1.2.3.4 - GET /a%20b HTTP/1.1 200 0'),
    ([], ''),
    ([''], '-'),
    (['ua with spaces', b'\n'], 'ua%20with%20spaces %0A'),
])
def test_access_line(fields, expected):
    line = access_line(fields)
    assert line == expected
    assert len(line.split(' ')) == max(len(fields), 1)


def test_access_line_accepts_generator():
    assert access_line(str(i) for i in range(3)) == '0 1 2'


@pytest.mark.parametrize('when, expected', [
    (0, '19700101T000000Z'),
    (1763600000, '20251120T005320Z'),
    (1763600000.999, '20251120T005320Z'),
    (951782400, '20000229T000000Z'),
])
def test_utc_stamp(when, expected):
    assert utc_stamp(when) == expected


# ---- sysloggable_excinfo -----------------------------------------------------------

def _inner():
    raise ValueError('bad\nthing  happened')


def _outer():
    _inner()


def _excinfo(func):
    try:
        func()
    except BaseException:
        return sys.exc_info()
    raise AssertionError('did not raise')


def test_sysloggable_excinfo_one_line_type_first_innermost_first():
    line = sysloggable_excinfo(*_excinfo(_outer))
    assert '\n' not in line
    assert line.startswith('ValueError: bad thing happened [')
    frames = re.search(r'\[(.*)\]$', line).group(1).split(' < ')
    assert re.fullmatch(r'test_log\.py:\d+ _inner', frames[0])
    assert re.fullmatch(r'test_log\.py:\d+ _outer', frames[1])
    assert re.fullmatch(r'test_log\.py:\d+ _excinfo', frames[2])
    assert len(frames) == 3


@pytest.mark.parametrize('exc, expected', [
    (KeyError('k'), "KeyError: 'k'"),
    (RuntimeError(), 'RuntimeError'),
    (OSError(2, 'No such file'), 'FileNotFoundError: [Errno 2] No such file'),
    (ValueError('  spaced\n\tout  '), 'ValueError: spaced out'),
])
def test_sysloggable_excinfo_without_traceback(exc, expected):
    assert sysloggable_excinfo(type(exc), exc, None) == expected


def test_sysloggable_excinfo_nothing():
    assert sysloggable_excinfo(None, None, None) == 'None'


# ---- NOTICE ------------------------------------------------------------------------

def test_notice_level():
    assert NOTICE == 25
    assert logging.INFO < NOTICE < logging.WARNING
    assert logging.getLevelName(NOTICE) == 'NOTICE'
    assert logging.getLevelName('NOTICE') == NOTICE


def test_syslog_handler_maps_notice():
    assert log._SysLogHandler.priority_map['NOTICE'] == 'notice'
    assert log._SysLogHandler.priority_map['INFO'] == 'info'


# ---- get_logger --------------------------------------------------------------------

@pytest.fixture
def route(request):
    """A logger route unique to the test; its handlers closed afterwards."""
    name = 'test_log_%s' % re.sub(r'\W', '_', request.node.name)
    yield name
    logger = logging.getLogger('brim.' + name)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


LINE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d (?P<tag>\S+)\[(?P<pid>\d+)\] (?P<level>[A-Z]+) (?P<msg>.*)$')


def _lines(path):
    # Split on '\n' only: a '\r' inside a message is not escaped (only '\n'
    # is turned into syslog's #012), and must not count as a line here.
    with open(path, encoding='utf-8', newline='') as fp:
        text = fp.read()
    assert text.endswith('\n')
    return text[:-1].split('\n')


def test_get_logger_writes_one_line_per_record(tmp_path, route):
    path = tmp_path / 'brim.log'
    logger = get_logger(route, name='mytag', level='DEBUG', log_file=str(path))
    assert logger.name == 'brim.' + route
    assert logger.propagate is False
    logger.info('hello %s', 'world')
    logger.warning('two\nlines\r\nhere')
    logger.log(NOTICE, '%d%% done', 50)
    logger.debug('unicode \u20ac')
    try:
        _outer()
    except ValueError:
        logger.exception('it broke:\n%s', 'details')
    logger.error('no args but a literal %s')
    lines = _lines(path)
    assert len(lines) == 6
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    assert {m.group('tag') for m in parsed} == {'mytag'}
    assert {int(m.group('pid')) for m in parsed} == {__import__('os').getpid()}
    assert [m.group('level') for m in parsed] == ['INFO', 'WARNING', 'NOTICE', 'DEBUG', 'ERROR', 'ERROR']
    messages = [m.group('msg') for m in parsed]
    assert messages[0] == route + ' hello world'
    assert messages[1] == route + ' two#012lines\r#012here'
    assert messages[2] == route + ' 50% done'
    assert messages[3] == route + ' unicode \u20ac'
    assert messages[4].startswith(route + ' it broke:#012details ValueError: bad thing happened [test_log.py:')
    assert 'Traceback' not in path.read_text(encoding='utf-8')
    assert messages[5] == route + ' no args but a literal %s'


@pytest.mark.parametrize('level, logged', [
    ('DEBUG', ['DEBUG', 'INFO', 'NOTICE', 'WARNING', 'ERROR', 'CRITICAL']),
    ('INFO', ['INFO', 'NOTICE', 'WARNING', 'ERROR', 'CRITICAL']),
    ('NOTICE', ['NOTICE', 'WARNING', 'ERROR', 'CRITICAL']),
    ('WARNING', ['WARNING', 'ERROR', 'CRITICAL']),
    ('ERROR', ['ERROR', 'CRITICAL']),
    ('CRITICAL', ['CRITICAL']),
])
def test_get_logger_level_filtering(tmp_path, route, level, logged):
    path = tmp_path / 'brim.log'
    logger = get_logger(route, level=level, log_file=str(path))
    for name in ['DEBUG', 'INFO', 'NOTICE', 'WARNING', 'ERROR', 'CRITICAL']:
        logger.log(logging.getLevelName(name), 'at %s', name)
    got = [LINE.match(line).group('level') for line in _lines(path)]
    assert got == logged


def test_get_logger_reconfigure_replaces_handler(tmp_path, route):
    first = tmp_path / 'first.log'
    second = tmp_path / 'second.log'
    logger = get_logger(route, log_file=str(first))
    logger.info('one')
    old_handler = logger.handlers[0]
    again = get_logger(route, log_file=str(second), level='WARNING')
    assert again is logger
    assert len(logger.handlers) == 1
    assert logger.handlers[0] is not old_handler
    logger.info('dropped')
    logger.warning('two')
    assert [LINE.match(x).group('msg') for x in _lines(first)] == [route + ' one']
    assert [LINE.match(x).group('msg') for x in _lines(second)] == [route + ' two']


def test_get_logger_appends_to_existing_file(tmp_path, route):
    path = tmp_path / 'brim.log'
    path.write_text('earlier line\n', encoding='utf-8')
    get_logger(route, log_file=str(path)).info('later')
    lines = _lines(path)
    assert lines[0] == 'earlier line'
    assert lines[1].endswith(route + ' later')


def test_get_logger_dash_means_stderr(route, capsys):
    logger = get_logger(route, name='tag', log_file='-')
    logger.info('to stderr')
    captured = capsys.readouterr()
    assert captured.out == ''
    assert LINE.match(captured.err.rstrip('\n')).group('msg') == route + ' to stderr'


def test_get_logger_unopenable_file(tmp_path, route):
    with pytest.raises(OSError):
        get_logger(route, log_file=str(tmp_path / 'no' / 'such' / 'dir' / 'x.log'))


def test_fallback_log_path(monkeypatch, tmp_path):
    monkeypatch.setenv('HOME', str(tmp_path))
    path = log.fallback_log_path()
    assert path in ('/var/log/brimd.log', str(tmp_path / '.brimd.log'))


# ---- ReopenableFileHandler / reopen_log_files (SIGUSR1, logrotate) ---------------------

def test_log_file_handler_is_reopenable(tmp_path, route):
    logger = get_logger(route, log_file=str(tmp_path / 'brim.log'))
    assert isinstance(logger.handlers[0], log.ReopenableFileHandler)


def test_reopen_after_rename_writes_a_new_file_at_the_path(tmp_path, route):
    path = tmp_path / 'brim.log'
    rotated = tmp_path / 'brim.log.1'
    logger = get_logger(route, log_file=str(path))
    logger.info('before rotation')
    path.rename(rotated)
    # Renamed but not told: records follow the open file.
    logger.info('still the old file')
    assert not path.exists()
    log.reopen_log_files()
    assert not path.exists()  # only a flag: reopened at the next record
    logger.info('after rotation')
    logger.info('and again')
    assert [LINE.match(x).group('msg') for x in _lines(rotated)] == [
        route + ' before rotation', route + ' still the old file']
    assert [LINE.match(x).group('msg') for x in _lines(path)] == [
        route + ' after rotation', route + ' and again']
    # Once only: a second rotation without a request stays on the new file.
    path.rename(tmp_path / 'brim.log.2')
    logger.info('third')
    assert not path.exists()
    assert _lines(tmp_path / 'brim.log.2')[-1].endswith(route + ' third')


def test_reopen_reaches_every_file_handler(tmp_path, route):
    other_route = route + '_other'
    first = get_logger(route, log_file=str(tmp_path / 'a.log'))
    second = get_logger(other_route, log_file=str(tmp_path / 'b.log'))
    try:
        first.info('a1')
        second.info('b1')
        (tmp_path / 'a.log').rename(tmp_path / 'a.log.1')
        (tmp_path / 'b.log').rename(tmp_path / 'b.log.1')
        log.reopen_log_files()
        first.info('a2')
        second.info('b2')
        assert [LINE.match(x).group('msg') for x in _lines(tmp_path / 'a.log')] == [route + ' a2']
        assert [LINE.match(x).group('msg') for x in _lines(tmp_path / 'b.log')] == [other_route + ' b2']
    finally:
        for handler in list(second.handlers):
            second.removeHandler(handler)
            handler.close()


def test_reopen_failure_keeps_the_old_file_and_says_so(tmp_path, route):
    directory = tmp_path / 'logs'
    directory.mkdir()
    path = directory / 'brim.log'
    rotated = tmp_path / 'brim.log.1'
    logger = get_logger(route, log_file=str(path))
    logger.info('before')
    # The file moves out and its directory goes: the path cannot be opened
    # (chmod would not stop root, which these tests may run as).
    path.rename(rotated)
    directory.rmdir()
    log.reopen_log_files()
    logger.info('after')
    logger.info('later')
    assert not directory.exists()
    lines = _lines(rotated)
    assert lines[0].endswith(route + ' before')
    assert lines[1] == 'cannot reopen log file %s: No such file or directory; still writing to the old one' % path
    assert [LINE.match(x).group('msg') for x in lines[2:]] == [route + ' after', route + ' later']
    # The directory is back: the next request reopens at the path.
    directory.mkdir()
    log.reopen_log_files()
    logger.info('back')
    assert [LINE.match(x).group('msg') for x in _lines(path)] == [route + ' back']
    assert len(_lines(rotated)) == 4


def test_reopen_in_a_signal_handler_only_sets_flags(tmp_path, route):
    import os
    import signal
    import time
    path = tmp_path / 'brim.log'
    logger = get_logger(route, log_file=str(path))
    logger.info('one')
    path.rename(tmp_path / 'brim.log.1')
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: log.reopen_log_files())
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not logger.handlers[0].reopen_requested and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert logger.handlers[0].reopen_requested is True
    assert not path.exists()  # nothing opened in the handler
    logger.info('two')
    assert [LINE.match(x).group('msg') for x in _lines(path)] == [route + ' two']


# ---- AccessLog (buffered access lines) ------------------------------------------------

def test_access_log_writes_what_the_logger_would(tmp_path, route):
    path = tmp_path / 'brim.log'
    logger = get_logger(route, name='mytag', log_file=str(path))
    logger.log(NOTICE, '%s', 'GET /a 200')
    log.AccessLog(logger).write('GET /a 200')
    first, second = path.read_text().splitlines()
    assert first == second
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d mytag\[%d\] NOTICE %s GET /a 200' % (os.getpid(), route),
                        second)


def test_access_log_batches_until_flushed(tmp_path, route):
    path = tmp_path / 'brim.log'
    logger = get_logger(route, log_file=str(path))
    scheduled = []
    access = log.AccessLog(logger, scheduled.append)
    access.write('one')
    access.write('two')
    assert scheduled == [access.flush]  # once per batch
    assert path.read_text() == ''
    scheduled.pop()()
    assert [line.split()[-1] for line in path.read_text().splitlines()] == ['one', 'two']
    access.write('three')
    assert scheduled == [access.flush]
    log.flush_access_logs()  # what every orderly exit calls
    assert path.read_text().splitlines()[-1].endswith(' three')


def test_access_log_respects_level_and_reopens(tmp_path, route):
    path = tmp_path / 'brim.log'
    quiet = log.AccessLog(get_logger(route, level='WARNING', log_file=str(path)))
    quiet.write('not logged')
    assert path.read_text() == ''
    access = log.AccessLog(get_logger(route, log_file=str(path)))
    access.write('before')
    path.rename(tmp_path / 'brim.log.1')
    log.reopen_log_files()
    access.write('after')
    assert path.read_text().split()[-1] == 'after'
    assert (tmp_path / 'brim.log.1').read_text().split()[-1] == 'before'


def test_access_log_through_syslog_stays_one_record_per_line(route):
    records = []
    logger = get_logger(route, log_file='-')
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.handlers[:] = [handler]  # not a file: each line goes through logging
    log.AccessLog(logger, lambda flush: None).write('GET /b 200')
    assert [(r.levelno, r.getMessage()) for r in records] == [(NOTICE, 'GET /b 200')]
