"""``brimd stats`` (issue 5, point 6): the live stats of the running server
as a table, read over its control socket, with no ``/stats`` app in the conf;
``--watch N`` (``--count K``) redraws it; exit 3 when nothing runs.

The table itself (:func:`brim.server.master.stats_table`) is also checked
on hand-made snapshots.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time

import pytest

from brim.server.master import _age, stats_table
from harness import alive, free_port, group_members, http_request, port_accepts, tcp_exchange, wait_until

CONF = """
[wsgi]
port = %(wsgi)d
workers = 2
apps = echo

[echo]
call = brim.wsgi_echo.WSGIEcho

[tcp]
port = %(tcp)d
call = brim.tcp_echo.TCPEcho

[daemons]
daemons = daemon_sample

[daemon_sample]
call = brim.daemon_sample.DaemonSample
interval = 3600
"""

HEADER = ['subserver', 'worker', 'pid', 'up', 'restarts', 'requests', '2xx', '4xx', '5xx', 'conns', 'open']
TIME = re.compile(r'^brimd (\d+): started \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, up \d+s$')


def table(text: str) -> tuple[int, dict]:
    """(main pid, {(subserver, worker): {column: cell}}) of one printed table."""
    lines = text.splitlines()
    match = TIME.match(lines[0])
    assert match, lines[0]
    assert lines[1].split() == HEADER, lines[1]
    # Text columns are left-aligned (no spaces inside), numbers right-aligned under their header.
    ends = [m.end() for m in re.finditer(r'\S+', lines[1])]
    worker_start = lines[1].index('worker')
    rows = {}
    for line in lines[2:]:
        parts = line[worker_start:ends[2]].split()
        cells = [line[ends[i - 1]:ends[i]].strip() for i in range(3, len(HEADER))]
        pid = parts[1] if len(parts) > 1 else ''
        rows[(line[:worker_start].strip(), parts[0])] = dict(zip(HEADER[2:], [pid] + cells, strict=True))
    return int(match.group(1)), rows


@pytest.fixture
def served(brimd):
    ports = dict(wsgi=free_port(), tcp=free_port())
    brimd.write_conf(CONF % ports)
    pid = brimd.start()
    wait_until(lambda: port_accepts(ports['wsgi']) and port_accepts(ports['tcp']), what='ports')
    return pid, ports


def test_stats_table_without_a_stats_app(brimd, served):
    pid, ports = served
    assert http_request(ports['wsgi'], path='/stats')[0] == 404  # no stats app: brimd stats still works
    result = brimd.run('stats')
    assert (result.returncode, result.stderr) == (0, '')
    main, rows = table(result.stdout)
    assert main == pid
    assert list(rows) == [('wsgi', '0'), ('wsgi', '1'), ('wsgi', '(total)'), ('tcp', '0'),
                          ('daemons', 'daemon_sample')]
    # The pids are those brimd status shows, live processes of this server's group.
    status = brimd.run('status').stdout.splitlines()[2:]
    status_pids = {(row.split()[0], row.split()[1]): row.split()[2] for row in status}
    members = group_members(pid)
    for key, row in rows.items():
        if key[1] == '(total)':
            assert row['pid'] == row['up'] == ''
            continue
        assert row['pid'] == status_pids[key]
        assert int(row['pid']) in members and alive(int(row['pid']))
        assert re.fullmatch(r'\d+s', row['up']) and row['restarts'] == '0'
    assert rows[('tcp', '0')]['requests'] == '' and rows[('tcp', '0')]['conns'] != ''
    assert rows[('daemons', 'daemon_sample')]['open'] == ''

    # Counters grow with traffic.
    before = rows
    for n in range(5):
        assert http_request(ports['wsgi'], 'POST', '/echo', body=b'%d' % n)[0] == 200
    assert http_request(ports['wsgi'], path='/missing')[0] == 404
    assert tcp_exchange(ports['tcp'], b'hello') == b'hello'
    after = wait_until(lambda: (lambda rows: rows if int(rows[('wsgi', '(total)')]['requests']) >= int(
        before[('wsgi', '(total)')]['requests']) + 6 else None)(table(brimd.run('stats').stdout)[1]),
        what='the requests to be counted')
    total = after[('wsgi', '(total)')]
    assert int(total['requests']) == int(before[('wsgi', '(total)')]['requests']) + 6
    assert int(total['2xx']) == int(before[('wsgi', '(total)')]['2xx']) + 5
    assert int(total['4xx']) == int(before[('wsgi', '(total)')]['4xx']) + 1
    assert int(total['requests']) == int(after[('wsgi', '0')]['requests']) + int(after[('wsgi', '1')]['requests'])
    assert int(after[('tcp', '0')]['conns']) == int(before[('tcp', '0')]['conns']) + 1


def test_watch_prints_count_tables(brimd, served):
    pid, _ = served
    started = time.monotonic()
    result = brimd.run('stats', '--watch', '0.3', '--count', '3')
    assert time.monotonic() - started >= 0.6
    assert (result.returncode, result.stderr) == (0, '')
    assert '\033' not in result.stdout  # not a terminal: no screen clearing
    tables = result.stdout.split('\n\n')
    assert len(tables) == 3
    assert all(table(text)[0] == pid for text in tables)


def test_watch_on_a_terminal_clears_the_screen_and_ctrl_c_ends_it(brimd, served):
    pid, _ = served
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(brimd.args('stats', '--watch', '0.2'), stdout=slave, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, env=brimd.env, start_new_session=True)
        brimd.popens.append(proc)
        os.close(slave)
        slave = -1
        output = b''
        deadline = time.monotonic() + 20
        while output.count(b'\033[H\033[2J') < 2 and time.monotonic() < deadline:
            if select.select([master], [], [], 1)[0]:
                output += os.read(master, 65536)
        screens = output.split(b'\033[H\033[2J')
        assert len(screens) >= 3 and screens[0] == b'', output
        assert screens[1].decode().replace('\r\n', '\n').startswith('brimd %d: started ' % pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert proc.stderr is not None
        with proc.stderr:
            assert proc.stderr.read() == b''
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)


def test_not_running(brimd):
    brimd.write_conf(CONF % dict(wsgi=free_port(), tcp=free_port()))
    result = brimd.run('stats')
    assert (result.returncode, result.stdout, result.stderr) == (3, '', 'brimd: not running\n')
    child = os.fork()
    if child == 0:
        os._exit(0)
    os.waitpid(child, 0)
    brimd.pid_path.write_text('%d\n' % child)
    result = brimd.run('stats', '--watch', '1')
    assert (result.returncode, result.stdout) == (3, '')
    assert result.stderr == 'brimd: not running (stale pid file %s)\n' % brimd.pid_path


def test_watch_ends_with_3_when_the_server_stops(brimd, served):
    pid, _ = served
    proc = subprocess.Popen(brimd.args('stats', '--watch', '0.2'), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env=brimd.env, start_new_session=True, text=True)
    brimd.popens.append(proc)
    assert proc.stdout is not None and proc.stdout.readline().startswith('brimd %d: ' % pid)
    assert brimd.run('stop').returncode == 0
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 3 and err == 'brimd: not running\n'


@pytest.mark.parametrize('argv, message', [
    (('status', '--watch', '1'), '--watch and --count are options of the stats command'),
    (('stats', '--count', '2'), '--count goes with --watch'),
    (('stats', '--watch', '0'), 'must be more than 0'),
    (('stats', '--watch', 'x'), 'not a number'),
    (('stats', '--watch', '1', '--count', '0'), 'must be 1 or more'),
])
def test_bad_options(brimd, argv, message):
    brimd.write_conf(CONF % dict(wsgi=free_port(), tcp=free_port()))
    result = brimd.run(*argv)
    assert result.returncode == 2 and message in result.stderr


# ---- the table on hand-made snapshots ---------------------------------------------------

def test_table_layout():
    now = 1763600000
    snapshot = {
        'start_time': now - 100,
        'wsgi': {'request_count': 12, '0': {'start_time': now - 5, 'pid': 101, 'restart_count': 1,
                                            'request_count': 7, 'status_2xx_count': 7, 'status_4xx_count': 0,
                                            'status_5xx_count': 0, 'open_connections': 2},
                 '1': {'start_time': now - 4000, 'pid': 0, 'restart_count': 2, 'request_count': 5,
                       'status_2xx_count': 4, 'status_4xx_count': 1, 'status_5xx_count': 0,
                       'open_connections': 0}},
        'udp': {'0': {'start_time': 0, 'pid': 103, 'restart_count': 0, 'datagram_count': 1234567}},
        'daemons': {'d1': {'start_time': now - 200000, 'pid': 104, 'restart_count': 3},
                    'd2': {'start_time': now - 10, 'pid': 105, 'restart_count': 0}},
    }
    assert stats_table(snapshot, now) == [
        'subserver  worker   pid     up  restarts  requests  2xx  4xx  5xx  open   dgrams',
        'wsgi       0        101     5s         1         7    7    0    0     2',
        'wsgi       1          -      -         2         5    4    1    0     0',
        'wsgi       (total)                     3        12   11    1    0     2',
        'udp        0        103      -         0                                 1234567',
        'daemons    d1       104  2d07h         3',
        'daemons    d2       105    10s         0',
        'daemons    (total)                     3',
    ]


def test_table_of_an_empty_server():
    assert stats_table({'start_time': 5}, 10) == ['subserver  worker  pid  up  restarts']


@pytest.mark.parametrize('seconds, text', [
    (-3, '0s'), (0, '0s'), (59.9, '59s'), (60, '1m00s'), (3599, '59m59s'), (3600, '1h00m'), (86399, '23h59m'),
    (86400, '1d00h'), (10 * 86400 + 7200, '10d02h'),
])
def test_age(seconds, text):
    assert _age(seconds) == text
