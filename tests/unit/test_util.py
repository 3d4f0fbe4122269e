"""Tests for brim.util: lock_path, make_dirs, unlink."""

import os
import time

import pytest

from brim.util import LockPathTimeout, lock_path, make_dirs, unlink


@pytest.mark.parametrize('kind', ['dir', 'file'])
def test_lock_path_yields_true_and_excludes_others(tmp_path, kind):
    path = tmp_path / 'thing'
    if kind == 'dir':
        path.mkdir()
    else:
        path.write_text('x')
    with lock_path(str(path), 1) as locked:
        assert locked is True
        # flock locks belong to the open file, so a second open in this
        # same process is another contender.
        started = time.monotonic()
        with pytest.raises(LockPathTimeout) as caught:
            with lock_path(str(path), 0.05):
                pass
        assert time.monotonic() - started < 1
        assert str(path) in str(caught.value)
    # Released when the first block ends.
    with lock_path(str(path), 0) as locked:
        assert locked is True


def test_lock_path_released_on_exception(tmp_path):
    with pytest.raises(RuntimeError):
        with lock_path(str(tmp_path), 0):
            raise RuntimeError('boom')
    with lock_path(str(tmp_path), 0) as locked:
        assert locked


def test_lock_path_missing_path_raises_oserror(tmp_path):
    with pytest.raises(FileNotFoundError):
        with lock_path(str(tmp_path / 'missing'), 0):
            pass


def test_lock_path_does_not_leak_descriptors(tmp_path):
    before = len(os.listdir('/proc/self/fd')) if os.path.isdir('/proc/self/fd') else None
    for _ in range(20):
        with lock_path(str(tmp_path), 0):
            pass
    if before is not None:
        assert len(os.listdir('/proc/self/fd')) == before


@pytest.mark.parametrize('existing', [False, True])
def test_make_dirs(tmp_path, existing):
    path = tmp_path / 'a' / 'b' / 'c'
    if existing:
        path.mkdir(parents=True)
    make_dirs(str(path))
    assert path.is_dir()


def test_make_dirs_over_a_file_raises(tmp_path):
    path = tmp_path / 'f'
    path.write_text('x')
    with pytest.raises(FileExistsError):
        make_dirs(str(path))


@pytest.mark.parametrize('existing', [False, True])
def test_unlink(tmp_path, existing):
    path = tmp_path / 'f'
    if existing:
        path.write_text('x')
    unlink(str(path))
    assert not path.exists()


def test_unlink_other_errors_raise(tmp_path):
    with pytest.raises(OSError):
        unlink(str(tmp_path))
