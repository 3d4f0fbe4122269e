"""User apps of all four kinds; workers and daemons that die come back."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import pytest

from harness import (REPO, alive, free_port, get_stats, http_request, port_accepts, process_state, tcp_exchange,
                     udp_exchange, wait_until)

USER_APPS = '''
import os
import time

from brim.options import app_option, parse_section, to_int, to_str


class Tag:
    """WSGI middleware: adds a header to every response, counts what it tagged."""

    OPTIONS = (app_option('header', to_str, 'X-Tag', 'header name'),)

    def __init__(self, name, parsed_conf, next_app):
        self.name, self.header, self.next_app = name, parsed_conf['header'], next_app

    def __call__(self, env, start_response):
        if env['PATH_INFO'] == '/pid':
            body = ('%d %d %d' % (os.getpid(), os.getuid(), os.getgid())).encode()
            start_response('200 OK', [('Content-Length', str(len(body)))])
            return [body]

        def tagged(status, headers, exc_info=None):
            env['brim.stats'].incr('%s.tagged' % self.name)
            env['brim.log_info'].append('tagged')
            return start_response(status, headers + [(self.header, env['brim.txn'])], exc_info)
        return self.next_app(env, tagged)

    @classmethod
    def parse_conf(cls, name, conf):
        return parse_section(name, conf, cls.OPTIONS)

    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return [('%s.tagged' % name, 'sum')]


class Upper:
    """TCP: reads one line, answers it upper-cased with a prefix from the conf."""

    def __init__(self, name, parsed_conf):
        self.prefix = parsed_conf['prefix'].encode()

    def __call__(self, subserver, stats, sock, ip, port):
        data = sock.recv(1024)
        stats.incr('lines')
        sock.sendall(self.prefix + data.upper())

    @classmethod
    def parse_conf(cls, name, conf):
        return {'prefix': conf.get(name, 'prefix', '')}

    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return [('lines', 'sum'), ('biggest', 'max')]


class Reverse:
    """UDP: sends each datagram back reversed; records the biggest seen."""

    def __init__(self, name, parsed_conf):
        pass

    def __call__(self, subserver, stats, sock, datagram, ip, port):
        stats.set('biggest', max(stats.get('biggest'), len(datagram)))
        sock.sendto(datagram[::-1], (ip, port))

    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return [('biggest', 'max')]


class Ticker:
    """Daemon: counts ticks every `every` ms."""

    def __init__(self, name, parsed_conf):
        self.every = parsed_conf['every'] / 1000.0

    def __call__(self, subserver, stats):
        print('ticker printed to stdout')
        import sys
        print('ticker printed to stderr', file=sys.stderr)
        while True:
            stats.incr('ticks')
            time.sleep(self.every)

    @classmethod
    def parse_conf(cls, name, conf):
        return {'every': conf.get_int(name, 'every', 1000)}

    @classmethod
    def stats_conf(cls, name, parsed_conf):
        return [('ticks', 'daemon')]


class Crasher:
    """Daemon: appends a line to a file, then raises."""

    def __init__(self, name, parsed_conf):
        self.path = parsed_conf['path']

    def __call__(self, subserver, stats):
        with open(self.path, 'a') as fp:
            fp.write('%d %.3f\\n' % (os.getpid(), time.monotonic()))
        raise ValueError('crasher crashed on purpose')

    @classmethod
    def parse_conf(cls, name, conf):
        return {'path': conf.get(name, 'path')}
'''

CONF = """
[wsgi#api]
port = %(wsgi)d
workers = 2
apps = tag stats
log_headers = yes

[tag]
call = userapps.Tag
header = X-Request-Id

[stats]
call = brim.wsgi_stats.WSGIStats

[tcp]
port = %(tcp)d
call = userapps.Upper
prefix = >

[udp#rev]
port = %(udp)d
call = userapps.Reverse

[daemons]
daemons = ticker crasher

[ticker]
call = userapps.Ticker
every = 50

[crasher]
call = userapps.Crasher
path = %(crash_file)s
"""


@pytest.fixture
def deployed(brimd):
    ports = dict(wsgi=free_port(), tcp=free_port(), udp=free_port(), crash_file=brimd.dir / 'crashes')
    brimd.write_module('userapps', USER_APPS)
    brimd.write_conf(CONF % ports)
    brimd.start()
    wait_until(lambda: port_accepts(ports['wsgi']), what='wsgi port')
    return brimd, ports


def test_user_apps_of_all_kinds_load_with_their_conf_and_stats(deployed):
    brimd, ports = deployed
    status, headers, _ = http_request(ports['wsgi'], path='/stats', headers={'X-Txn': 'txn-123'})
    assert status == 200 and headers['x-request-id'] == 'txn-123'  # parse_conf honoured; brim.txn from X-Txn
    # Without X-Txn, every request gets a new UUID (RFC 9562 version 8).
    txns = [uuid.UUID(http_request(ports['wsgi'], path='/stats')[1]['x-request-id']) for _ in range(4)]
    assert len(set(txns)) == 4 and {txn.version for txn in txns} == {8}
    assert tcp_exchange(ports['tcp'], b'hello\n') == b'>HELLO\n'
    assert udp_exchange(ports['udp'], b'abc') == b'cba'
    assert udp_exchange(ports['udp'], b'abcdef') == b'fedcba'

    def ready():
        stats = get_stats(ports['wsgi'])
        return stats if stats['daemons']['ticker']['ticks'] >= 3 and stats['tcp']['lines'] == 1 else None
    stats = wait_until(ready, what='stats')
    assert stats['wsgi#api']['tag.tagged'] >= 1
    assert stats['tcp']['biggest'] == 0 and 'lines' in stats['tcp']['0']
    assert stats['udp#rev']['biggest'] == 6 and stats['udp#rev']['datagram_count'] == 2
    assert set(stats['daemons']) == {'ticker', 'crasher'}
    assert 'ticks' not in stats['daemons']  # daemon-type stats are not rolled up
    # A daemonized process's stray output is captured into the log.
    brimd.wait_log('STDOUT: ticker printed to stdout')
    brimd.wait_log('STDERR: ticker printed to stderr')
    # The access line has the app's log_info and, with log_headers, the headers.
    log = brimd.wait_log(' tagged ')
    line = [entry for entry in log.splitlines() if 'txn-123' in entry][0]
    assert 'GET /stats HTTP/1.1 200' in line and 'X-Txn:%20txn-123' in line


def test_worker_killed_is_replaced_and_serving(deployed):
    brimd, ports = deployed
    pids = {int(http_request(ports['wsgi'], path='/pid')[2].split()[0]) for _ in range(6)}
    victim = sorted(pids)[0]
    os.kill(victim, signal.SIGKILL)
    brimd.wait_log('(pid %d) exited: signal SIGKILL; restarting it' % victim)

    def replaced():
        seen = {int(http_request(ports['wsgi'], path='/pid')[2].split()[0]) for _ in range(6)}
        return victim not in seen and len(seen) == 2
    wait_until(replaced, 10, what='a replacement worker serving')
    stats = get_stats(ports['wsgi'])
    assert {'0', '1'} <= set(stats['wsgi#api'])


def test_crash_looping_daemon_backs_off_exponentially(deployed):
    brimd, ports = deployed
    crashes = ports['crash_file']

    def starts():
        return [float(line.split()[1]) for line in crashes.read_text().splitlines()] if crashes.exists() else []
    wait_until(lambda: len(starts()) >= 4, 15, what='four crashes')
    brimd.wait_log('ValueError: crasher crashed on purpose')
    brimd.wait_log('crash loop (3 quick exits in a row): restarting it in 4 s')
    # Each wait is about twice the one before (1, 2, 4 s): a bound on behaviour,
    # not a timing: no gap may be shorter than 0.9 of its backoff.
    gaps = [b - a for a, b in zip(starts(), starts()[1:], strict=False)][:3]
    assert [gap >= 0.9 * 2 ** i for i, gap in enumerate(gaps)] == [True] * len(gaps), gaps
    stats = get_stats(ports['wsgi'])['daemons']['crasher']
    assert stats['restart_count'] >= 3
    assert stats['last_exit'] == 1
    # While it waits, its bucket says so: backoff seconds, no pid.
    seen: list = []

    def backing_off():
        seen[:] = [get_stats(ports['wsgi'])['daemons']['crasher']]
        return seen[0]['backoff'] >= 4
    wait_until(backing_off, 10, what='backoff in stats')
    assert seen[0]['pid'] == 0
    # The other daemon is untouched by its neighbour's crashes.
    ticker = get_stats(ports['wsgi'])['daemons']['ticker']
    assert ticker['ticks'] > 0 and ticker['restart_count'] == 0 and ticker['pid'] > 0
    status = brimd.run('status')
    assert status.returncode == 0
    rows = {line.split()[1]: line.split() for line in status.stdout.splitlines()[2:]}
    assert rows['ticker'][2] == str(ticker['pid'])
    assert int(rows['crasher'][3]) >= 3 and rows['crasher'][4] == '1'


def test_supervisor_killed_is_replaced(deployed):
    brimd, ports = deployed
    main = brimd.pid()
    worker = int(http_request(ports['wsgi'], path='/pid')[2].split()[0])
    supervisor = int(Path('/proc/%d/stat' % worker).read_text().rsplit(')', 1)[1].split()[1])
    assert supervisor != main
    os.kill(supervisor, signal.SIGKILL)
    brimd.wait_log('supervisor [wsgi#api] (pid %d) exited: signal SIGKILL' % supervisor)
    # Its orphaned workers notice and exit; a new supervisor brings new ones.
    wait_until(lambda: process_state(worker) in (None, 'Z'), 10, what='orphaned worker to exit')

    def serving_again():
        try:
            return int(http_request(ports['wsgi'], path='/pid', timeout=2)[2].split()[0]) != worker
        except OSError:
            return False
    wait_until(serving_again, 10, what='new workers')
    assert alive(main)


def _nobody_can_import_from(directory: str) -> bool:
    """True if user nobody can run this Python and import brim and ``directory``'s modules."""
    import pwd
    import subprocess
    import sys
    nobody = pwd.getpwnam('nobody')
    code = 'import sys; sys.path[:0] = %r; import brim, userapps' % ([directory, str(REPO)],)
    try:
        result = subprocess.run([sys.executable, '-c', code], user=nobody.pw_uid, group=nobody.pw_gid,
                                capture_output=True, timeout=30, cwd='/')
    except (OSError, subprocess.SubprocessError):
        return False
    return result.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason='dropping privileges needs root')
def test_privileges_drop_to_user(brimd, tmp_path_factory):
    import pwd
    import shutil
    import tempfile
    port = free_port()
    shared = tempfile.mkdtemp(prefix='brim-test-')  # world-readable, unlike pytest's tmp dirs
    try:
        os.chmod(shared, 0o755)
        Path(shared, 'userapps.py').write_text(USER_APPS)
        os.chmod(Path(shared, 'userapps.py'), 0o644)
        if not _nobody_can_import_from(shared):
            pytest.skip('user nobody cannot read this Python installation or checkout')
        brimd.env['PYTHONPATH'] = os.pathsep.join([shared, str(REPO)])
        brimd.write_conf('[brim]\nuser = nobody\n[wsgi]\nport = %d\napps = tag\n[tag]\ncall = userapps.Tag\n' % port)
        brimd.start()
        wait_until(lambda: port_accepts(port), what='port')
        uid = int(http_request(port, path='/pid')[2].split()[1])
        assert uid == pwd.getpwnam('nobody').pw_uid
        # The main process dropped too (Uid: real effective saved filesystem).
        uid_line = [line for line in Path('/proc/%d/status' % brimd.pid()).read_text().splitlines()
                    if line.startswith('Uid:')][0]
        assert uid_line.split()[1:] == [str(uid)] * 4
    finally:
        shutil.rmtree(shared, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason='changing group needs root')
def test_privileges_drop_to_group_and_umask(brimd):
    import grp
    group = 'nogroup' if _group_exists('nogroup') else 'nobody'
    port = free_port()
    brimd.write_module('userapps', USER_APPS)
    brimd.write_conf('[brim]\ngroup = %s\numask = 0077\n[wsgi]\nport = %d\napps = tag\n[tag]\ncall = userapps.Tag\n'
                     % (group, port))
    main = brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    gid = int(http_request(port, path='/pid')[2].split()[2])
    assert gid == grp.getgrnam(group).gr_gid
    status = Path('/proc/%d/status' % main).read_text()
    assert [line for line in status.splitlines() if line.startswith('Gid:')][0].split()[1:] == [str(gid)] * 4
    assert 'Umask:\t0077' in status
    assert Path('/proc/%d/cwd' % main).resolve() == Path('/')


def _group_exists(name):
    import grp
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False
