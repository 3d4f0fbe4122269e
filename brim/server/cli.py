"""The ``brimd`` command line (SPEC §2): parse, run one command, exit.

Every start-up error is one line on stderr and exit status 1; ``-x`` adds
the traceback. ``status`` follows LSB (0 running, 1 dead with a pid file, 3
not running); so does ``stats`` where it can (0 shown, 3 not running, 1
when the running server does not answer).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Optional, Sequence

from brim import __version__
from brim.errors import BrimError

COMMANDS = ('start', 'stop', 'shutdown', 'restart', 'reload', 'force-reload', 'status', 'stats', 'no-daemon',
            'check')

DESCRIPTION = """\
Deploys WSGI, TCP and UDP servers and background daemons from one INI conf.

commands:
  start         daemonize and serve (does nothing if already running)
  stop          exit now, severing connections (SIGTERM)
  shutdown      release the ports now; finish in-flight work, then exit (SIGHUP)
  restart       check the conf, retire the running server gracefully, start anew
  reload        the same as restart; so is force-reload
  status        say whether it is running (exit 0 running, 1 dead, 3 not running)
  stats         the running server's live counters as a table, a row per worker
                and daemon (no /stats app needed); --watch N redraws it every
                N seconds until Ctrl-C (--count K: K times); exit 3 if not running
  no-daemon     serve in the foreground in one process, no daemons (default)
  check         validate the conf and apps; print what would run
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``brimd`` (its ``--help`` text lists the commands)."""
    parser = argparse.ArgumentParser(prog='brimd', description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('command', nargs='?', default='no-daemon', choices=COMMANDS, metavar='command',
                        help='one of: %s (default no-daemon)' % ', '.join(COMMANDS))
    parser.add_argument('-c', '--conf', action='append', metavar='PATH',
                        help='conf file to read; repeat for more (default /etc/brimd.conf then ~/.brimd.conf)')
    parser.add_argument('-p', '--pid-file', metavar='PATH', help='pid file, overriding the conf; - for none')
    parser.add_argument('-o', '--output', action='store_true',
                        help='keep stdout and stderr open when daemonized (logs go there without syslog)')
    parser.add_argument('-x', '--error-stack-trace', action='store_true',
                        help='show the traceback of start-up errors')
    parser.add_argument('--watch', type=_positive_float, metavar='N',
                        help='stats: redraw the table every N seconds until Ctrl-C')
    parser.add_argument('--count', type=_positive_int, metavar='K',
                        help='stats --watch: stop after K tables')
    parser.add_argument('-v', '--version', action='version', version='brimd %s' % __version__)
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not a number: %r' % text) from None
    if not 0 < value < float('inf'):
        raise argparse.ArgumentTypeError('must be more than 0: %r' % text)
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('not an integer: %r' % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError('must be 1 or more: %r' % text)
    return value


def _absolute_sys_path() -> None:
    # brimd changes directory to /; relative import paths must keep working.
    sys.path[:] = [os.path.abspath(entry) if entry else os.getcwd() for entry in sys.path]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``brimd``; return the exit status."""
    from brim.server.master import DEFAULT_CONF_FILES, Server

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != 'stats' and (args.watch or args.count):
        parser.error('--watch and --count are options of the stats command')
    if args.count and not args.watch:
        parser.error('--count goes with --watch')
    _absolute_sys_path()
    server = Server(args.conf or DEFAULT_CONF_FILES, args.pid_file, args.output)
    command = {'reload': 'restart', 'force-reload': 'restart'}.get(args.command, args.command)
    try:
        if command == 'stats':
            return server.cmd_stats(args.watch, args.count)
        return getattr(server, 'cmd_' + command.replace('-', '_'))()
    except BrimError as err:
        if args.error_stack_trace:
            remote = getattr(err, 'remote_trace', None)
            print(remote or traceback.format_exc(), file=sys.stderr, end='')
        print('brimd: %s' % err, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as err:
        if args.error_stack_trace:
            traceback.print_exc()
        print('brimd: unexpected %s: %s (run with -x for the traceback)' % (
            type(err).__name__, ' '.join(str(err).split())), file=sys.stderr)
        return 1
