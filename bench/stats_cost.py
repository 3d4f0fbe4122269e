#!/usr/bin/env python3
"""What the richer built-in stats cost per request (GitHub issue 5, point 2).

``python bench/stats_cost.py`` checks the commit before the change out into
a temporary ``git worktree`` (``HEAD``: the change is the working tree, not
committed yet; ``--base REV`` picks another commit), then starts two brimd,
"without" (that tree) and "with" (this one), side by side on free
127.0.0.1 ports, same conf: ``[wsgi]`` two workers, ``apps = hello stats``
(compare.py's hello-world app, so stats counting is on, and the access log
at ``log_level = INFO``) and ``[tcp]`` two workers of ``brim.tcp_echo.TCPEcho``.
It loads them in turn, interleaved (a warm-up of each, then ``--rounds``
rounds of without/with, alternating which goes first), ``--seconds`` per
load: WSGI with ``wrk -t2 -c50``, TCP with compare.py's
``tcp_echo_load`` (50 connections, 4 KiB messages). It reports the median
rate and the median server CPU per unit (µs per request, ms per echoed MB),
and writes ``bench/results-stats.md`` (``--out``). The worktree is removed
at the end (``git worktree remove --force``).

Target: the stats cost < 3 % server CPU per request.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import compare  # noqa: E402  (bench/compare.py: servers, loads, CPU accounting)

CONF = '''[brim]
ip = 127.0.0.1
pid_file = {tmp}/{name}.pid
log_file = {tmp}/{name}.log
log_level = INFO

[wsgi]
port = {wsgi}
workers = 2
apps = hello stats

[hello]
call = benchhello.Hello

[stats]
call = brim.wsgi_stats.WSGIStats

[tcp]
port = {tcp}
workers = 2
call = brim.tcp_echo.TCPEcho
'''


def start(tmp: str, name: str, tree: str, taken: set[int]) -> tuple[compare.Brimd, dict[str, int]]:
    """Start one brimd running the brim package of ``tree``."""
    ports = {'wsgi': compare.free_port(taken=taken), 'tcp': compare.free_port(taken=taken)}
    brimd = compare.Brimd(tmp, CONF.format(tmp=tmp, name=name, **ports), name, ports['wsgi'])
    brimd.env['PYTHONPATH'] = os.pathsep.join([tmp, tree])
    brimd.start()
    if not compare.wait_for(lambda: compare.http_get(ports['wsgi'], '/stats')[0] == 200, 30) or \
            not compare.wait_for(lambda: compare.tcp_echo_ok(ports['tcp']), 30):
        raise compare.BenchError('%s did not serve' % name)
    loaded = os.path.dirname(os.path.dirname(os.path.abspath(subprocess.run(
        [sys.executable, '-c', 'import brim; print(brim.__file__)'], capture_output=True, text=True,
        env=brimd.env, cwd=tmp).stdout.strip())))
    if os.path.realpath(loaded) != os.path.realpath(tree):
        raise compare.BenchError('%s loads brim from %s, not %s' % (name, loaded, tree))
    return brimd, ports


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--seconds', type=float, default=8.0)
    parser.add_argument('--base', default='HEAD', help='the commit without the change (default HEAD)')
    parser.add_argument('--out', default=os.path.join(compare.BENCH, 'results-stats.md'))
    parser.add_argument('--no-tcp', action='store_true', help='WSGI only')
    args = parser.parse_args()
    for tool in ('wrk', 'gcc', 'git'):
        if shutil.which(tool) is None:
            print('stats_cost: %s is not installed' % tool, file=sys.stderr)
            return 2
    tmp = tempfile.mkdtemp(prefix='brim-stats-cost-')
    base = os.path.join(tmp, 'base')
    os.chdir(tmp)  # python -m brim puts the current directory first on sys.path
    subprocess.run(['git', '-C', compare.REPO, 'worktree', 'add', '--detach', base, args.base], check=True,
                   capture_output=True)
    base_commit = subprocess.run(['git', '-C', base, 'rev-parse', '--short', 'HEAD'], capture_output=True,
                                 text=True).stdout.strip()
    servers: list[compare.Brimd] = []
    try:
        with open(os.path.join(tmp, 'benchhello.py'), 'w') as fp:
            fp.write(compare.HELLO_APP)
        binary = os.path.join(tmp, 'tcp_echo_load')
        done = compare.run_command(['gcc', '-O2', '-Wall', '-o', binary,
                                    os.path.join(compare.CLIENTS, 'tcp_echo_load.c')], 120)
        if done.returncode != 0:
            raise compare.BenchError('gcc failed: %s' % done.stderr)
        taken: set[int] = set()
        without, without_ports = start(tmp, 'without', base, taken)
        servers.append(without)
        with_, with_ports = start(tmp, 'with', compare.REPO, taken)
        servers.append(with_)
        load = compare.Loader(argparse.Namespace(udp_sockets=1, udp_window=1), tmp, {'tcp': binary})
        scenarios = ['wsgi'] + ([] if args.no_tcp else ['tcp'])
        targets = {
            (scenario, key): compare.BrimdTarget(key, ports[scenario], brimd, scenario)
            for key, brimd, ports in (('without', without, without_ports), ('with', with_, with_ports))
            for scenario in scenarios}
        results: dict[tuple[str, str], list[dict]] = {key: [] for key in targets}
        for scenario in scenarios:
            for key in ('without', 'with'):
                compare.measured_load(load, scenario, targets[(scenario, key)], 2)  # warm-up
        for n in range(args.rounds):
            order = ('without', 'with') if n % 2 == 0 else ('with', 'without')
            for scenario in scenarios:
                for key in order:
                    result = compare.measured_load(load, scenario, targets[(scenario, key)], args.seconds)
                    results[(scenario, key)].append(result)
                    print('round %d %-4s %-7s %10.1f/s  cpu/unit %.3f  errors %d' % (
                        n + 1, scenario, key, result['metric'], result['cpu_per_unit'], result['errors']),
                        flush=True)
        final = with_.stats()
    finally:
        for brimd in servers:
            for note in brimd.stop():
                print(note, file=sys.stderr)
        subprocess.run(['git', '-C', compare.REPO, 'worktree', 'remove', '--force', base], capture_output=True)
        compare.REGISTRY.kill_everything()
    host = compare.machine()
    units = {'wsgi': ('req/s', 'µs CPU per request'), 'tcp': ('MB/s', 'ms CPU per echoed MB')}
    lines = ['# What the richer built-in stats cost', '',
             'Written by `bench/stats_cost.py` (GitHub issue 5, point 2), %s: brimd at %s ("without", a '
             'git worktree) beside this tree %s ("with": the request-duration histogram, `bytes_in`/'
             '`bytes_out`, `in_flight`, `free_slots`, `accept_backlog`). Same conf for both: `[wsgi]` 2 workers, '
             '`apps = hello stats`, access log on; `[tcp]` 2 workers, `TCPEcho`. Interleaved: %d rounds of '
             '%g s per load, alternating which goes first; medians.' % (
                 host['date'], base_commit, host['commit'], args.rounds, args.seconds), '',
             '- %s, %d cores, Linux %s, Python %s, eventlet %s; %s' % (
                 host['cpu'], host['nproc'], host['kernel'], host['python'], host['eventlet'], host['wrk']), '',
             '| load | without | with | rate ratio | CPU per unit without | with | CPU change |',
             '|---|---|---|---|---|---|---|']
    summary = []
    for scenario in scenarios:
        rate = {key: statistics.median(r['metric'] for r in results[(scenario, key)]) for key in ('without', 'with')}
        cpu = {key: statistics.median(r['cpu_per_unit'] for r in results[(scenario, key)])
               for key in ('without', 'with')}
        change = (cpu['with'] / cpu['without'] - 1) * 100 if cpu['without'] else 0.0
        name = 'WSGI hello, wrk -t2 -c50' if scenario == 'wsgi' else 'TCP echo, 4 KiB, 50 connections'
        lines.append('| %s | %s %s | %s | %.3fx | %.2f %s | %.2f | %+.1f %% |' % (
            name, compare.num(rate['without']), units[scenario][0], compare.num(rate['with']),
            rate['with'] / rate['without'], cpu['without'], units[scenario][1], cpu['with'], change))
        summary.append((scenario, rate, cpu, change))
    lines += ['', 'Every round:', '']
    for (scenario, key), runs in results.items():
        lines.append('- %s %s: %s' % (scenario, key, ', '.join(
            '%s (%.2f)' % (compare.num(r['metric']), r['cpu_per_unit']) for r in runs)))
    wsgi = final.get('wsgi', {})
    lines += ['', 'The "with" server\'s `/stats` at the end: request_count %d, in_flight %d, bytes_in %d, '
              'bytes_out %d, histogram %s.' % (
                  wsgi.get('request_count', 0), wsgi.get('in_flight', 0), wsgi.get('bytes_in', 0),
                  wsgi.get('bytes_out', 0), {k[len('request_duration_bucket_'):]: v for k, v in wsgi.items()
                                             if k.startswith('request_duration_bucket_') and v}), '']
    with open(args.out, 'w') as fp:
        fp.write('\n'.join(lines))
    for scenario, rate, cpu, change in summary:
        print('%s: without %.0f, with %.0f (%.3fx); CPU per unit %.3f -> %.3f (%+.1f %%)' % (
            scenario, rate['without'], rate['with'], rate['with'] / rate['without'], cpu['without'], cpu['with'],
            change))
    print('wrote', args.out)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
