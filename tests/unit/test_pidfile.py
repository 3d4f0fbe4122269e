"""Tests for brim.server.pidfile: pid file I/O and liveness of brimd processes."""

import os
import subprocess
import sys
import time

import pytest

from brim.server.pidfile import is_running, process_state, read_pid, remove_pid, write_pid

HAVE_PROC = os.path.isdir('/proc/self')
needs_proc = pytest.mark.skipif(not HAVE_PROC, reason='needs /proc')


# ---- read_pid -------------------------------------------------------------------

@pytest.mark.parametrize('content, expected', [
    (b'123\n', 123),
    (b'  4567  \n', 4567),
    (b'1', 1),
    (b'', None),
    (b'\n', None),
    (b'0\n', None),
    (b'-5\n', None),
    (b'+5\n', None),
    (b'abc\n', None),
    (b'12 34\n', None),
    (b'12.5\n', None),
    (b'0x10\n', None),
    (b'\xff\xfe\x00garbage', None),
    ('\xb2\n'.encode('utf-8'), None),  # a str.isdigit() digit int() refuses
    (b'123\nextra\n', None),
])
def test_read_pid(tmp_path, content, expected):
    path = tmp_path / 'brimd.pid'
    path.write_bytes(content)
    assert read_pid(str(path)) == expected


def test_read_pid_missing(tmp_path):
    assert read_pid(str(tmp_path / 'nope.pid')) is None


def test_read_pid_directory(tmp_path):
    assert read_pid(str(tmp_path)) is None


# ---- write_pid / remove_pid ----------------------------------------------------------

def test_write_pid_writes_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / 'brimd.pid'
    write_pid(str(path), 4321)
    assert path.read_text() == '4321\n'
    assert read_pid(str(path)) == 4321
    assert os.listdir(tmp_path) == ['brimd.pid']


def test_write_pid_replaces_atomically(tmp_path):
    path = tmp_path / 'brimd.pid'
    path.write_text('111\n')
    with open(path) as reader:
        old_inode = os.fstat(reader.fileno()).st_ino
        write_pid(str(path), 222)
        # Rename, not rewrite: a reader of the old file never sees a half-written one.
        assert reader.read() == '111\n'
    assert os.stat(path).st_ino != old_inode
    assert read_pid(str(path)) == 222
    assert os.listdir(tmp_path) == ['brimd.pid']


def test_write_pid_unwritable_dir(tmp_path):
    with pytest.raises(OSError):
        write_pid(str(tmp_path / 'no' / 'such' / 'brimd.pid'), 1)


@pytest.mark.parametrize('content, pid, removed', [
    ('100\n', 100, True),
    ('100\n', 101, False),
    ('garbage', 100, False),
    ('', 100, False),
])
def test_remove_pid_only_if_it_matches(tmp_path, content, pid, removed):
    path = tmp_path / 'brimd.pid'
    path.write_text(content)
    remove_pid(str(path), pid)
    assert path.exists() is not removed
    if not removed:
        assert path.read_text() == content


def test_remove_pid_missing_file(tmp_path):
    remove_pid(str(tmp_path / 'nope.pid'), 1)  # no error
    assert not (tmp_path / 'nope.pid').exists()


# ---- liveness --------------------------------------------------------------------

def _wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def _proc_read(pid, name):
    try:
        with open('/proc/%d/%s' % (pid, name), 'rb') as fp:
            return fp.read()
    except OSError:
        return b''


def _kill(proc):
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


@pytest.mark.parametrize('pid', [None, 0])
def test_is_running_no_pid(pid):
    assert is_running(pid) is False


@needs_proc
def test_is_running_own_pid_depends_on_brim_in_cmdline():
    # This test process is python -m pytest ...: alive, but brimd only if
    # 'brim' happens to be in its command line (e.g. a path).
    with open('/proc/self/cmdline', 'rb') as fp:
        cmdline = fp.read()
    assert process_state(os.getpid()) in ('R', 'S')
    assert is_running(os.getpid()) is (b'brim' in cmdline)


@needs_proc
@pytest.mark.timeout(30)
@pytest.mark.parametrize('extra_args, expected', [
    (['brim'], True),
    (['--brimd-conf=x'], True),
    (['other'], False),
])
def test_is_running_live_child(extra_args, expected):
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'] + extra_args)
    try:
        assert _wait_for(lambda: b'time.sleep' in _proc_read(proc.pid, 'cmdline'))
        assert is_running(proc.pid) is expected
    finally:
        _kill(proc)
    # Dead and reaped: not running whatever its command line said.
    assert is_running(proc.pid) is False


@needs_proc
@pytest.mark.timeout(30)
def test_is_running_zombie_is_not_running():
    proc = subprocess.Popen([sys.executable, '-c', 'pass', 'brim'])
    try:
        # Exited but not reaped: state Z, yet kill(pid, 0) still finds it.
        assert _wait_for(lambda: process_state(proc.pid) == 'Z'), process_state(proc.pid)
        os.kill(proc.pid, 0)
        assert is_running(proc.pid) is False
    finally:
        _kill(proc)


@needs_proc
@pytest.mark.timeout(30)
def test_is_running_forked_zombie_is_not_running():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        assert _wait_for(lambda: process_state(pid) == 'Z')
        assert is_running(pid) is False
    finally:
        os.waitpid(pid, 0)
    assert process_state(pid) is None


@needs_proc
def test_is_running_dead_pid():
    with open('/proc/sys/kernel/pid_max') as fp:
        beyond = int(fp.read()) + 1
    assert process_state(beyond) is None
    assert is_running(beyond) is False


@needs_proc
@pytest.mark.timeout(30)
def test_process_state_survives_parentheses_in_command_name():
    code = ("open('/proc/self/comm', 'w').write('x) Z (y')\n"
            'import time; time.sleep(30)\n')
    proc = subprocess.Popen([sys.executable, '-c', code, 'brim'])
    try:
        assert _wait_for(lambda: _proc_read(proc.pid, 'comm').strip() == b'x) Z (y')
        assert process_state(proc.pid) in ('S', 'R')
        assert is_running(proc.pid) is True
    finally:
        _kill(proc)
