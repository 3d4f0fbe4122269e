"""Tests for brim.server.sdnotify, the sd_notify client, against real Unix
datagram sockets standing in for systemd's (a path and an abstract name)."""

import logging
import os
import socket
import time

import pytest

from brim.server import sdnotify

TIMEOUT = 5.0


def _receiver(sockets, address):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sockets.append(sock)
    sock.bind(address)
    sock.settimeout(TIMEOUT)
    return sock


def _assignments(data):
    assert data.endswith(b'\n')
    return data.decode().splitlines()


def test_parse_address():
    assert sdnotify.parse_address('/run/systemd/notify') == '/run/systemd/notify'
    assert sdnotify.parse_address('@brim-test') == '\0brim-test'
    for value in (None, '', '@', 'relative/path', 'vsock:2:1234'):
        assert sdnotify.parse_address(value) is None


def test_path_socket_gets_one_datagram(tmp_path, sockets):
    path = str(tmp_path / 'notify')
    receiver = _receiver(sockets, path)
    notifier = sdnotify.Notifier.from_environ({'NOTIFY_SOCKET': path})
    assert notifier.enabled
    assert notifier.send('READY=1', 'STATUS=fine')
    assert _assignments(receiver.recv(4096)) == ['READY=1', 'STATUS=fine']


def test_abstract_socket(sockets):
    name = 'brim-test-sdnotify-%d' % os.getpid()
    receiver = _receiver(sockets, '\0' + name)
    notifier = sdnotify.Notifier.from_environ({'NOTIFY_SOCKET': '@' + name})
    assert notifier.notify_ready(1234, 'serving')
    assert _assignments(receiver.recv(4096)) == ['MAINPID=1234', 'READY=1', 'STATUS=serving']


def test_from_environ_unsets_the_variable_unless_told_not_to(tmp_path):
    env = {'NOTIFY_SOCKET': str(tmp_path / 'notify'), 'OTHER': 'x'}
    assert sdnotify.Notifier.from_environ(env, unset=False).address == str(tmp_path / 'notify')
    assert 'NOTIFY_SOCKET' in env
    assert sdnotify.Notifier.from_environ(env).address == str(tmp_path / 'notify')
    assert env == {'OTHER': 'x'}


def test_from_os_environ_by_default(tmp_path, monkeypatch):
    monkeypatch.setenv('NOTIFY_SOCKET', str(tmp_path / 'notify'))
    assert sdnotify.Notifier.from_environ().address == str(tmp_path / 'notify')
    assert 'NOTIFY_SOCKET' not in os.environ


def test_unset_or_unusable_variable_sends_nothing(caplog):
    for env in ({}, {'NOTIFY_SOCKET': ''}):
        notifier = sdnotify.Notifier.from_environ(env)
        assert not notifier.enabled
        assert notifier.send('READY=1') is False
        assert notifier.notify_ready(1) is False
    with caplog.at_level(logging.WARNING, logger='brim.sdnotify'):
        assert not sdnotify.Notifier.from_environ({'NOTIFY_SOCKET': 'not/absolute'}).enabled
    assert 'not an absolute path or @name' in caplog.text


def test_socket_gone_never_raises_and_warns_once(tmp_path, sockets, caplog):
    path = str(tmp_path / 'notify')
    receiver = _receiver(sockets, path)
    notifier = sdnotify.Notifier(path)
    receiver.close()
    os.unlink(path)
    with caplog.at_level(logging.DEBUG, logger='brim.sdnotify'):
        assert notifier.send('READY=1') is False
        assert notifier.send('STOPPING=1') is False
    levels = [record.levelno for record in caplog.records if record.name == 'brim.sdnotify']
    assert levels == [logging.WARNING, logging.DEBUG]
    assert 'READY' in caplog.records[0].getMessage()
    # A bound-then-closed socket file (no receiver: ECONNREFUSED) is the same.
    stale = str(tmp_path / 'stale')
    _receiver(sockets, stale).close()
    assert sdnotify.Notifier(stale).send('READY=1') is False
    # And an abstract name nobody holds.
    assert sdnotify.Notifier('\0brim-test-nobody-%d' % os.getpid()).send('READY=1') is False


def test_reloading_carries_the_monotonic_clock(tmp_path, sockets):
    path = str(tmp_path / 'notify')
    receiver = _receiver(sockets, path)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert sdnotify.Notifier(path).notify_reloading('restarting')
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    lines = _assignments(receiver.recv(4096))
    assert lines[0] == 'RELOADING=1' and lines[2] == 'STATUS=restarting'
    key, _, value = lines[1].partition('=')
    assert key == 'MONOTONIC_USEC' and before <= int(value) <= after


def test_stopping_only_after_ready_and_only_once(tmp_path, sockets):
    path = str(tmp_path / 'notify')
    receiver = _receiver(sockets, path)
    notifier = sdnotify.Notifier(path)
    assert notifier.notify_stopping() is False  # never reported ready: nothing to stop
    notifier.notify_ready(42)
    assert notifier.notify_stopping('stopping')
    assert notifier.notify_stopping() is False
    assert _assignments(receiver.recv(4096)) == ['MAINPID=42', 'READY=1']
    assert _assignments(receiver.recv(4096)) == ['STOPPING=1', 'STATUS=stopping']
    receiver.settimeout(0.1)
    with pytest.raises(socket.timeout):
        receiver.recv(4096)
