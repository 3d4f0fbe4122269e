"""TLS with real certificates (trustme): versions, client certificates,
stalled handshakes, and TLS conf errors, for WSGI and raw TCP.

Each deployment has a TLS ``[wsgi]`` (the SLOW_APP's /pid, and /echo), a TLS
``[tcp]`` echo, and a plain ``[wsgi#plain]`` serving /stats, whose worker
pids and restart counts show that a failed handshake never costs a worker.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import warnings
from pathlib import Path
from typing import Optional, Union

import pytest

from harness import SLOW_APP, free_port, get_stats

trustme = pytest.importorskip('trustme')

KINDS = ('wsgi', 'tcp')


class PKI:
    """A server CA and its 127.0.0.1 certificate, a client CA with a client
    certificate, and another CA with a client certificate, as PEM files."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.server_ca = trustme.CA()
        server = self.server_ca.issue_cert('127.0.0.1', 'localhost')
        self.certfile, self.keyfile = directory / 'server-cert.pem', directory / 'server-key.pem'
        server.cert_chain_pems[0].write_to_path(str(self.certfile))
        server.private_key_pem.write_to_path(str(self.keyfile))
        self.client_ca = trustme.CA()
        self.ca_certs = directory / 'client-ca.pem'
        self.client_ca.cert_pem.write_to_path(str(self.ca_certs))
        self.client_cert = self.client_ca.issue_cert('client@example.test')
        self.stranger_cert = trustme.CA().issue_cert('stranger@example.test')

    def context(self, cert: Optional[object] = None, max_version: Optional[ssl.TLSVersion] = None,
                min_version: Optional[ssl.TLSVersion] = None) -> ssl.SSLContext:
        """A client context trusting the server CA, presenting ``cert`` if given."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.server_ca.configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)  # type: ignore[attr-defined]
        if max_version is not None:
            context.maximum_version = max_version
        if min_version is not None:
            context.minimum_version = min_version
        return context


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    return PKI(tmp_path)


def deploy(brimd, pki: PKI, tls: str = '', brim: str = '') -> dict[str, int]:
    """Start brimd with TLS ``[wsgi]`` and ``[tcp]`` (both given the extra
    ``tls`` lines) and a plain ``[wsgi#plain]`` with /stats; return the ports."""
    ports = {'wsgi': free_port(), 'tcp': free_port(), 'plain': free_port()}
    brimd.write_module('slowapp', SLOW_APP)
    section = 'certfile = %s\nkeyfile = %s\n%s' % (pki.certfile, pki.keyfile, tls)
    brimd.write_conf(
        '[brim]\n%s'
        '[wsgi]\nport = %d\n%sapps = slow echo\n[slow]\ncall = slowapp.Slow\n[echo]\ncall = brim.wsgi_echo.WSGIEcho\n'
        '[tcp]\nport = %d\n%scall = brim.tcp_echo.TCPEcho\n'
        '[wsgi#plain]\nport = %d\napps = stats\n[stats]\ncall = brim.wsgi_stats.WSGIStats\n'
        % (brim, ports['wsgi'], section, ports['tcp'], section, ports['plain']))
    brimd.start()  # returns once every worker serves
    return ports


def served(port: int, kind: str, context: ssl.SSLContext, timeout: float = 10.0) -> bytes:
    """One exchange over TLS: GET /pid (wsgi: the worker's pid) or an echo
    (tcp: what was sent). Raises what the handshake or the exchange raised."""
    if kind == 'wsgi':
        conn = http.client.HTTPSConnection('127.0.0.1', port, context=context, timeout=timeout)
        try:
            conn.request('GET', '/pid')
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, (response.status, body)
            return body
        finally:
            conn.close()
    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname='127.0.0.1') as tls:
            tls.sendall(b'over tls')
            received = b''
            while len(received) < 8:
                chunk = tls.recv(100)
                if not chunk:
                    break
                received += chunk
            return received


def refused(port: int, kind: str, context: ssl.SSLContext) -> Union[bytes, Exception]:
    """Try an exchange that the server must refuse: return the exception,
    or the (short) bytes received before the server closed.

    With TLS 1.3 a client's handshake ends before the server has checked
    the client's certificate, so the refusal may come on the first read.
    """
    request = b'GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' if kind == 'wsgi' else b'over tls'
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname='127.0.0.1') as tls:
                tls.sendall(request)
                received = b''
                while True:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return received
                    received += chunk
    except (ssl.SSLError, OSError) as err:
        return err


def old_client(pki: PKI, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client context offering only TLS ``version`` (at OpenSSL security
    level 0, so that TLS 1.1 is really offered); skips if this OpenSSL
    cannot offer it at all."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', DeprecationWarning)  # TLS 1.1 is deprecated: that is the point
            context = pki.context(min_version=version, max_version=version)
        context.set_ciphers('DEFAULT:@SECLEVEL=0')
    except (ValueError, ssl.SSLError) as err:
        pytest.skip('this OpenSSL cannot offer %s: %s' % (version.name, err))
    return context


def assert_refused_by_version(port: int, kind: str, context: ssl.SSLContext) -> None:
    outcome = refused(port, kind, context)
    if isinstance(outcome, ssl.SSLError) and outcome.reason in ('NO_CIPHERS_AVAILABLE', 'NO_PROTOCOLS_AVAILABLE'):
        pytest.skip('this OpenSSL refuses to offer the old version itself: %s' % outcome)
    # The server's protocol_version alert: it was offered, and refused.
    assert isinstance(outcome, ssl.SSLError) and outcome.reason == 'TLSV1_ALERT_PROTOCOL_VERSION', outcome


def worker_pids(plain: int) -> dict[str, tuple[int, int]]:
    """``{subserver: (pid, restart_count)}`` of worker 0 of wsgi and tcp."""
    stats = get_stats(plain)
    return {kind: (stats[kind]['0']['pid'], stats[kind]['restart_count']) for kind in KINDS}


def section_lines(log: str, section: str) -> list[str]:
    """The log lines of ``section`` (``date brim[pid] LEVEL section message``)."""
    return [line for line in log.splitlines() if line.split(' ', 4)[3:4] == [section]]


def assert_handshake_failures_logged(brimd, section: str, needle: Optional[str] = None) -> list[str]:
    """``section`` logged no traceback and nothing at ERROR (failed
    handshakes are single lines at INFO or DEBUG). With ``needle``, waits
    for it in the log first; returns the section's lines containing it.

    Without a needle nothing is waited for: a worker logs a failed
    handshake before it serves the next request, and each test has served
    one since its last failure (workers = 1).
    """
    if needle:
        brimd.wait_log(needle)
    lines = section_lines(brimd.log(), section)
    assert not [line for line in lines if 'Traceback' in line or ' ERROR ' in line], '\n'.join(lines)
    return [line for line in lines if needle and needle in line]


def test_https_and_tls_tcp_are_served_with_tls_1_2_minimum(brimd, pki):
    ports = deploy(brimd, pki)
    good = pki.context()
    assert served(ports['wsgi'], 'wsgi', good).isdigit()
    assert served(ports['tcp'], 'tcp', good) == b'over tls'
    conn = http.client.HTTPSConnection('127.0.0.1', ports['wsgi'], context=good, timeout=10)
    conn.request('POST', '/echo', body=b'secret')
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b'secret')
    conn.close()
    tls12 = pki.context(max_version=ssl.TLSVersion.TLSv1_2)
    assert served(ports['tcp'], 'tcp', tls12) == b'over tls'
    assert served(ports['wsgi'], 'wsgi', tls12).isdigit()
    before = worker_pids(ports['plain'])
    for kind in KINDS:
        assert_refused_by_version(ports[kind], kind, old_client(pki, ssl.TLSVersion.TLSv1_1))
        assert served(ports[kind], kind, good)
    assert worker_pids(ports['plain']) == before
    check = brimd.run('check')
    assert check.returncode == 0, check.stderr
    assert '[tcp] tcp on 127.0.0.1:%d TLS 1.2+, 1 worker' % ports['tcp'] in check.stdout
    assert '[wsgi#plain] wsgi on 127.0.0.1:%d, 1 worker' % ports['plain'] in check.stdout
    tcp = assert_handshake_failures_logged(brimd, 'tcp', 'TLS handshake with 127.0.0.1:')
    assert len(tcp) == 1 and ' INFO tcp ' in tcp[0] and 'UNSUPPORTED_PROTOCOL' in tcp[0], tcp
    assert_handshake_failures_logged(brimd, 'wsgi')


def test_tls_min_version_1_3_refuses_a_1_2_client(brimd, pki):
    ports = deploy(brimd, pki, tls='tls_min_version = 1.3\n')
    before = worker_pids(ports['plain'])
    for kind in KINDS:
        assert_refused_by_version(ports[kind], kind, pki.context(max_version=ssl.TLSVersion.TLSv1_2))
        assert served(ports[kind], kind, pki.context(min_version=ssl.TLSVersion.TLSv1_3))
    with socket.create_connection(('127.0.0.1', ports['tcp']), timeout=10) as raw:
        with pki.context().wrap_socket(raw, server_hostname='127.0.0.1') as tls:
            assert tls.version() == 'TLSv1.3'
    assert worker_pids(ports['plain']) == before
    check = brimd.run('check')
    assert '[wsgi] wsgi on 127.0.0.1:%d TLS 1.3, 1 worker' % ports['wsgi'] in check.stdout
    tcp = assert_handshake_failures_logged(brimd, 'tcp', 'TLS handshake with 127.0.0.1:')
    assert len(tcp) == 1 and ' INFO tcp ' in tcp[0] and 'UNSUPPORTED_PROTOCOL' in tcp[0], tcp
    assert_handshake_failures_logged(brimd, 'wsgi')


@pytest.mark.parametrize('version', ['1.2', '1.3'])
def test_client_certificates_required_with_ca_certs(brimd, pki, version):
    ports = deploy(brimd, pki, tls='ca_certs = %s\n' % pki.ca_certs)
    top = ssl.TLSVersion.TLSv1_2 if version == '1.2' else ssl.TLSVersion.TLSv1_3
    with_cert = pki.context(pki.client_cert, max_version=top)
    before = worker_pids(ports['plain'])
    pid = served(ports['wsgi'], 'wsgi', with_cert)
    assert served(ports['tcp'], 'tcp', with_cert) == b'over tls'
    for kind in KINDS:
        for cert in (None, pki.stranger_cert):
            outcome = refused(ports[kind], kind, pki.context(cert, max_version=top))
            assert isinstance(outcome, Exception) or outcome == b'', (kind, cert, outcome)
        assert served(ports[kind], kind, with_cert)  # and the worker serves on
    assert served(ports['wsgi'], 'wsgi', with_cert) == pid
    assert worker_pids(ports['plain']) == before
    check = brimd.run('check')
    assert '[tcp] tcp on 127.0.0.1:%d TLS 1.2+ with client certificates, 1 worker' % ports['tcp'] in check.stdout
    tcp = assert_handshake_failures_logged(brimd, 'tcp', 'TLS handshake with 127.0.0.1:')
    assert len(tcp) == 2 and all(' INFO tcp ' in line and 'CERTIFICATE' in line for line in tcp), tcp
    assert_handshake_failures_logged(brimd, 'wsgi')


def _closed_by_server(sock: socket.socket, deadline: float) -> bool:
    """True once the server has closed ``sock`` (EOF or reset), False if it
    is still open at ``deadline`` (monotonic)."""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        sock.settimeout(left)
        try:
            if not sock.recv(65536):  # a TLS alert may come first; then EOF
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False


@pytest.mark.parametrize('kind', KINDS)
def test_stalled_handshakes_never_block_the_worker(brimd, pki, kind):
    ports = deploy(brimd, pki, brim='workers = 1\nclient_timeout = 2\n')
    port, good = ports[kind], pki.context()
    before = worker_pids(ports['plain'])
    stalled = [socket.create_connection(('127.0.0.1', port), timeout=10) for _ in range(5)]
    half = socket.create_connection(('127.0.0.1', port), timeout=10)
    half.sendall(b'\x16\x03\x01\x02\x00')  # a handshake record header announcing 512 bytes, then nothing
    stalled.append(half)
    dripping = threading.Event()
    dripper = socket.create_connection(('127.0.0.1', port), timeout=10)
    stalled.append(dripper)

    def drip() -> None:  # a byte of the record every 0.3 s: each read is quick, the whole is not
        try:
            dripper.sendall(b'\x16\x03\x01\x02\x00')
            while not dripping.wait(0.3):
                dripper.sendall(b'\x00')
        except OSError:
            pass

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    opened = time.monotonic()
    try:
        time.sleep(0.3)  # the stalled handshakes are under way in the worker
        # Answered within the request's own timeout: no stalled handshake holds the worker up.
        assert served(port, kind, good, timeout=1.5)
        deadline = opened + 2 + 3  # client_timeout, and a generous margin
        still_open = [index for index, sock in enumerate(stalled) if not _closed_by_server(sock, deadline)]
        assert still_open == [], 'not closed %g s after connecting: %s (5 silent, then half, then dripping)' % (
            time.monotonic() - opened, still_open)
    finally:
        dripping.set()
        for sock in stalled:
            sock.close()
        thread.join(5)
    assert served(port, kind, good)
    assert worker_pids(ports['plain']) == before
    if kind == 'tcp':
        timed_out = assert_handshake_failures_logged(brimd, kind, 'not done within client_timeout (2 s)')
        assert len(timed_out) == 7, timed_out
    assert_handshake_failures_logged(brimd, kind)


@pytest.mark.parametrize('command', ['start', 'check'])
@pytest.mark.parametrize('case', ['missing', 'not-pem', 'without-certfile', 'min-version-1.1'])
def test_bad_tls_conf_is_one_line_exit_1(brimd, pki, command, case):
    port = free_port()
    junk = pki.dir / 'junk.pem'
    junk.write_text('not a certificate\n')
    tls = {
        'missing': ('certfile = %s\nkeyfile = %s\nca_certs = /nonexistent/ca.pem\n' % (pki.certfile, pki.keyfile),
                    ["[wsgi] ca_certs = '/nonexistent/ca.pem': cannot load", 'No such file']),
        'not-pem': ('certfile = %s\nkeyfile = %s\nca_certs = %s\n' % (pki.certfile, pki.keyfile, junk),
                    ["[wsgi] ca_certs = '%s': cannot load" % junk, 'no certificate']),
        'without-certfile': ('ca_certs = %s\n' % pki.ca_certs,
                             ["[wsgi] ca_certs = '%s': set certfile too" % pki.ca_certs]),
        'min-version-1.1': ('certfile = %s\nkeyfile = %s\ntls_min_version = 1.1\n' % (pki.certfile, pki.keyfile),
                            ["[wsgi] tls_min_version = '1.1'", '1.2 or 1.3']),
    }
    lines, fragments = tls[case]
    brimd.write_conf('[wsgi]\nport = %d\n%sapps = echo\n[echo]\ncall = brim.wsgi_echo.WSGIEcho\n' % (port, lines))
    result = brimd.run(command)
    assert result.returncode == 1, (result.stdout, result.stderr)
    stderr = result.stderr.strip().splitlines()
    assert len(stderr) == 1 and stderr[0].startswith('brimd: '), result.stderr
    for fragment in fragments:
        assert fragment in stderr[0]
    assert '_ssl.c' not in stderr[0] and 'Traceback' not in result.stderr
    assert brimd.pid() is None
