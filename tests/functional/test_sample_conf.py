"""The README's promise: brimd on the shipped brimd.conf-sample serves it all."""

from __future__ import annotations

import json

from harness import SAMPLE, free_port, get_stats, http_request, tcp_exchange, udp_exchange, wait_until


def test_shipped_sample_serves_http_tcp_udp_stats_and_daemon(brimd):
    # The shipped sample as is, with a second conf (read after it, so it
    # wins) moving the ports, pid file and log into the test's directory.
    wsgi, tcp, udp = free_port(), free_port(), free_port()
    brimd.conf_path = SAMPLE
    override = brimd.dir / 'override.conf'
    override.write_text(
        '[brim]\npid_file = %s\nlog_file = %s\n[wsgi]\nport = %d\n[tcp]\nport = %d\n[udp]\nport = %d\n'
        '[daemon_sample]\ninterval = 0.2\n' % (brimd.pid_path, brimd.log_path, wsgi, tcp, udp))
    brimd.extra_confs.append(override)

    check = brimd.run('check')
    assert check.returncode == 0, check.stderr
    assert 'conf OK' in check.stdout
    assert check.stderr == ''  # the sample has no unknown options

    brimd.start()
    wait_until(lambda: _serving(wsgi), what='wsgi port')

    status, _, body = http_request(wsgi, 'POST', '/echo', b'hello')
    assert (status, body) == (200, b'hello')
    assert tcp_exchange(tcp, b'tcp bytes') == b'tcp bytes'
    assert udp_exchange(udp, b'a datagram') == b'a datagram'
    assert http_request(wsgi, path='/nowhere')[0] == 404

    def counted():
        stats = get_stats(wsgi)
        # A request is counted when its response closes, just after the client has it.
        done = (stats['wsgi']['echo.requests'] == 1 and stats['wsgi']['status_404_count'] == 1
                and stats['tcp']['connection_count'] == 1)
        return stats if done else None
    stats = wait_until(counted, what='counters')
    assert set(stats) == {'start_time', 'wsgi', 'tcp', 'udp', 'daemons'}
    assert stats['wsgi']['status_2xx_count'] >= 1 and stats['wsgi']['status_404_count'] == 1
    assert set(k for k in stats['wsgi'] if k.isdigit()) == {'0', '1'}  # workers = 2
    assert stats['tcp']['byte_count'] == len(b'tcp bytes')
    assert stats['udp']['datagram_count'] == 1 and stats['udp']['byte_count'] == len(b'a datagram')
    first = stats['daemons']['daemon_sample']['iterations']
    wait_until(lambda: get_stats(wsgi)['daemons']['daemon_sample']['iterations'] > first + 1,
               what='daemon iterations to grow')

    # JSONP, HEAD and other methods, as SPEC §5 says.
    status, headers, body = http_request(wsgi, path='/stats?callback=cb')
    assert status == 200 and body.startswith(b'cb(') and body.endswith(b');')
    json.loads(body[3:-2])
    status, headers, body = http_request(wsgi, 'HEAD', '/stats')
    assert status == 200 and body == b'' and int(headers['content-length']) > 0
    assert http_request(wsgi, 'PUT', '/stats', b'')[0] == 501

    # One NOTICE access line per request in the log.
    brimd.wait_log('POST /echo HTTP/1.1 200 5 5')
    stop = brimd.run('stop')
    assert stop.returncode == 0, stop.stderr


def _serving(port):
    try:
        return http_request(port, path='/stats', timeout=2)[0] == 200
    except OSError:
        return False
