"""TLS, IPv6, `ip = *`, and HTTP/1.1 framing at the edge (SPEC §8)."""

from __future__ import annotations

import http.client
import socket
import ssl

import pytest

from harness import free_port, http_request, port_accepts, tcp_exchange, wait_until

trustme = pytest.importorskip('trustme')


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(('::1', 0))
        return True
    except OSError:
        return False


def test_tls_for_wsgi_and_tcp(brimd):
    ca = trustme.CA()
    cert = ca.issue_cert('127.0.0.1', 'localhost')
    certfile, keyfile = brimd.dir / 'cert.pem', brimd.dir / 'key.pem'
    cert.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))
    wsgi, tcp = free_port(), free_port()
    brimd.write_conf('[brim]\ncertfile = %s\nkeyfile = %s\n[wsgi]\nport = %d\napps = echo\n'
                     '[echo]\ncall = brim.wsgi_echo.WSGIEcho\n[tcp]\nport = %d\ncall = brim.tcp_echo.TCPEcho\n'
                     % (certfile, keyfile, wsgi, tcp))
    brimd.start()
    wait_until(lambda: port_accepts(wsgi) and port_accepts(tcp), what='ports')
    context = ssl.create_default_context()
    ca.configure_trust(context)
    conn = http.client.HTTPSConnection('127.0.0.1', wsgi, context=context, timeout=10)
    conn.request('POST', '/echo', body=b'secret')
    response = conn.getresponse()
    assert (response.status, response.read()) == (200, b'secret')
    conn.close()
    with socket.create_connection(('127.0.0.1', tcp), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname='127.0.0.1') as tls:
            assert tls.version() in ('TLSv1.2', 'TLSv1.3')
            tls.sendall(b'over tls')
            assert tls.recv(100) == b'over tls'
    # Versions, client certificates and stalled handshakes: test_tls.py.


@pytest.mark.skipif(not _ipv6_loopback(), reason='no IPv6 loopback')
def test_ipv6_address_and_star(brimd):
    v6, star = free_port(), free_port()
    brimd.write_conf('[brim]\nip = ::1\n[tcp]\nport = %d\ncall = brim.tcp_echo.TCPEcho\n'
                     '[tcp2]\nip = *\nport = %d\ncall = brim.tcp_echo.TCPEcho\n' % (v6, star), defaults=False)
    brimd.conf_path.write_text(brimd.conf_path.read_text().replace(
        '[brim]\n', '[brim]\npid_file = %s\nlog_file = %s\n' % (brimd.pid_path, brimd.log_path)))
    check = brimd.run('check')
    assert '[tcp] tcp on [::1]:%d' % v6 in check.stdout
    brimd.start()
    wait_until(lambda: port_accepts(v6, '::1'), what='IPv6 port')
    with socket.create_connection(('::1', v6), timeout=5) as sock:
        sock.sendall(b'six')
        assert sock.recv(10) == b'six'
    # ip = * serves both IPv4 and IPv6 clients.
    wait_until(lambda: port_accepts(star), what='* port')
    assert tcp_exchange(star, b'four') == b'four'
    with socket.create_connection(('::1', star), timeout=5) as sock:
        sock.sendall(b'six')
        assert sock.recv(10) == b'six'


def _raw_http(port: int, request: bytes) -> bytes:
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(request)
        data = b''
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk


@pytest.mark.parametrize('request_bytes', [
    b'GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n',  # no Host
    b'GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n',  # two Hosts
    b'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
    b'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd',
    b'GARBAGE\r\n\r\n',
], ids=['no-host', 'two-hosts', 'cl-and-te', 'two-content-lengths', 'bad-request-line'])
def test_ambiguous_requests_get_400_and_close(brimd, request_bytes):
    port = free_port()
    brimd.write_conf('[wsgi]\nport = %d\napps = echo\n[echo]\ncall = brim.wsgi_echo.WSGIEcho\n' % port)
    brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    response = _raw_http(port, request_bytes)  # returns only once the server closes
    assert response.startswith(b'HTTP/1.') and response.split(b' ')[1] == b'400', response[:200]
    assert http_request(port, 'POST', '/echo', b'still fine')[2] == b'still fine'
    stats_status = _raw_http(port, b'GET /stats HTTP/1.0\r\n\r\n')  # the worker still serves
    assert stats_status.startswith(b'HTTP/1.1 404')


def test_absolute_form_target_is_served(brimd):
    # RFC 9112 §3.2.2: a server MUST accept the absolute-form; the target's
    # authority replaces the Host header.
    port = free_port()
    brimd.write_conf('[wsgi]\nport = %d\napps = echo\n[echo]\ncall = brim.wsgi_echo.WSGIEcho\n' % port)
    brimd.start()
    wait_until(lambda: port_accepts(port), what='port')
    response = _raw_http(port, b'POST http://example.test:8000/echo HTTP/1.1\r\nHost: other\r\n'
                               b'Content-Length: 5\r\nConnection: close\r\n\r\nhello')
    assert response.startswith(b'HTTP/1.1 200') and response.endswith(b'\r\n\r\nhello')
    log = brimd.wait_log('POST /echo HTTP/1.1 200')
    assert 'http://' not in log
