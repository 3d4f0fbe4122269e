"""The main process of brimd: the commands of SPEC §2 and the process tree.

Process model (``start``)::

    brimd start ── binds every socket, probes the apps in a forked child,
    │              forks the daemon, waits for "ok", exits 0
    └─ main ─────── pid file, drops privileges, creates the shared stats,
       │            supervises one supervisor per subserver
       ├─ supervisor [wsgi] ── sustains `workers` WSGI workers
       ├─ supervisor [tcp]  ── sustains TCP workers
       └─ supervisor [daemons] ── sustains one process per daemon

Invariants: the main process and the supervisors never import Eventlet or
any app module; apps are imported in the probe child (after privileges
drop) and in each worker. Signals go down the tree: HUP graceful, TERM now.
"""

from __future__ import annotations

import configparser
import json
import logging
import os
import select
import signal
import sys
import time
import traceback
from typing import Any, Optional, TextIO

from brim.conf import read_conf
from brim.errors import BrimError, ConfError, StartupError
from brim.log import get_logger, sysloggable_excinfo
from brim.options import DAEMONS, ServerConf, resolve
from brim.server import pidfile
from brim.server.daemons import DaemonsSubserver
from brim.server.subserver import IPSubserver, Subserver, import_eventlet, now, run_green, set_title
from brim.server.tcp import TCPSubserver
from brim.server.udp import UDPSubserver
from brim.server.wsgi import WSGISubserver
from brim.service import (
    EXIT_BOOT_FAILED, capture_exceptions_stdout_stderr, droppriv, get_listening_tcp_socket,
    get_listening_udp_socket, sustain_workers)
from brim.stats import SharedStats, StatsLayout

#: Conf files read when no -c is given; the later file's values win.
DEFAULT_CONF_FILES = ['/etc/brimd.conf', '~/.brimd.conf']
#: Seconds stop/shutdown/restart wait for the main process to exit.
PID_WAIT_TIME = 30
#: Seconds shutdown/restart wait for the ports to be released.
PORT_WAIT_TIME = 30
#: Seconds ``start`` waits for the app probe.
PROBE_TIME = 120

SUBSERVER_CLASSES = {'wsgi': WSGISubserver, 'tcp': TCPSubserver, 'udp': UDPSubserver, DAEMONS: DaemonsSubserver}


class Server:
    """The brimd server: reads the conf and carries out one command.

    Args:
        conf_files: Conf files to read, in order (``-c``).
        pid_file: ``-p``: overrides ``pid_file`` (``-`` for none), or None.
        output: ``-o``: keep stdio open when daemonized.
        stdout, stderr: Where command output and errors go.
    """

    def __init__(self, conf_files: list[str], pid_file: Optional[str] = None, output: bool = False,
                 stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr) -> None:
        self.conf_files = conf_files
        self.pid_file_override = pid_file
        self.output = output
        self.stdout = stdout
        self.stderr = stderr
        self.server_conf: Optional[ServerConf] = None
        self.subservers: list[Subserver] = []
        self.stats: Optional[SharedStats] = None
        self.logger = logging.getLogger('brim.main')
        self.values: dict[str, Any] = {}
        self.conf: Any = None

    # -- conf -------------------------------------------------------------------

    def load_conf(self) -> None:
        """Read and resolve the conf; build the subservers.

        Raises:
            ConfError: no conf file, a syntax error, or a bad value.
        """
        try:
            conf = read_conf(self.conf_files, exit_on_read_exception=False)
        except configparser.Error as err:
            raise ConfError('', '', None, 'cannot parse: %s' % ' '.join(str(err).split())) from None
        if not conf.files:
            raise ConfError('', '', None, 'no conf file could be read (tried %s)' % ', '.join(self.conf_files))
        self.conf = conf
        self.server_conf = resolve(conf)
        self.values = self.server_conf.values
        self.subservers = [SUBSERVER_CLASSES[sub.kind](self, sub) for sub in self.server_conf.subservers]

    @property
    def pid_file(self) -> str:
        if self.pid_file_override is not None:
            return '' if self.pid_file_override == '-' else os.path.abspath(os.path.expanduser(self.pid_file_override))
        return '' if self.values.get('pid_file') == '-' else self.values.get('pid_file', '')

    def ip_subservers(self) -> list[IPSubserver]:
        return [sub for sub in self.subservers if isinstance(sub, IPSubserver)]

    # -- start-up steps -----------------------------------------------------------

    def bind_all(self) -> None:
        """Bind every listening socket (before privileges drop).

        Raises:
            StartupError: naming the section and address that failed.
        """
        try:
            for sub in self.ip_subservers():
                try:
                    sub.bind()
                except StartupError as err:
                    if str(err).startswith('['):
                        raise
                    raise StartupError('[%s] %s' % (sub.name, err)) from None
        except BrimError:
            for sub in self.ip_subservers():
                sub.close_sockets()
            raise

    def load_everything(self) -> tuple[list, list[str]]:
        """Load every app in this process; return (stats layout JSON, warnings).

        Raises:
            AppLoadError, ConfError: the first problem, one line.
        """
        assert self.server_conf is not None
        warnings = list(self.server_conf.warnings)
        rows = []
        for sub in self.subservers:
            for app in sub.load_apps():
                warnings.extend(app.warnings)
            rows.append((sub.name, sub.stats_rows()))
        return StatsLayout(rows).to_json(), warnings

    def probe(self) -> tuple[list, list[str]]:
        """Load every app in a forked child, with privileges dropped as they
        will be, so the main process never imports app code.

        Returns:
            (stats layout JSON, warnings).

        Raises:
            BrimError: the child's one-line error.
        """
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            code = 0
            try:
                self.drop_privileges()
                layout, warnings = self.load_everything()
                message: dict = {'layout': layout, 'warnings': warnings}
            except BaseException as err:
                code = 1
                one_line = str(err) if isinstance(err, BrimError) else sysloggable_excinfo(*sys.exc_info())
                message = {'error': one_line, 'trace': traceback.format_exc()}
            try:
                data = json.dumps(message).encode('utf-8')
                while data:
                    data = data[os.write(write_end, data):]
            finally:
                os._exit(code)
        os.close(write_end)
        chunks = []
        deadline = time.monotonic() + PROBE_TIME
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([read_end], [], [], remaining)[0]:
                    os.kill(pid, signal.SIGKILL)
                    raise StartupError('loading the apps took over %d seconds' % PROBE_TIME)
                chunk = os.read(read_end, 65536)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(read_end)
            os.waitpid(pid, 0)
        try:
            message = json.loads(b''.join(chunks).decode('utf-8'))
        except ValueError:
            raise StartupError('loading the apps failed (the probe process died)') from None
        if 'error' in message:
            failure = BrimError(message['error'])
            failure.remote_trace = message.get('trace')  # type: ignore[attr-defined]
            raise failure
        return message['layout'], message['warnings']

    def drop_privileges(self) -> None:
        droppriv(self.values.get('user'), self.values.get('group'), self.values['umask'])

    def setup_main_logger(self, console: bool) -> logging.Logger:
        values = self.values
        try:
            self.logger = get_logger('main', values['log_name'], values['log_level'], values['log_facility'],
                                     console, values['log_file'])
        except OSError as err:
            raise StartupError('[brim] log_file = %r: cannot open: %s' % (values['log_file'], err.strerror)) from None
        return self.logger

    # -- commands -----------------------------------------------------------------

    def say(self, text: str) -> None:
        print(text, file=self.stdout)
        self.stdout.flush()

    def check_pid_file_writable(self) -> None:
        path = self.pid_file
        if not path:
            return
        try:
            with open(path, 'a'):
                pass
        except OSError as err:
            raise StartupError('[brim] pid_file = %r: cannot write: %s' % (path, err.strerror)) from None

    def cmd_start(self) -> int:
        """Daemonize and serve. Returns the exit status."""
        self.load_conf()
        pid = pidfile.read_pid(self.pid_file) if self.pid_file else None
        if pid is not None and pidfile.is_running(pid):
            self.say('%d already running' % pid)
            return 0
        self.check_pid_file_writable()
        # Probe before binding: a bad app never holds a port.
        layout, warnings = self.probe()
        self.bind_all()
        return self.daemonize(layout, warnings)

    def daemonize(self, layout: list, warnings: list[str]) -> int:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid:
            os.close(write_end)
            for sub in self.ip_subservers():
                sub.close_sockets()
            with os.fdopen(read_end, 'rb') as ready:
                answer = ready.read().decode('utf-8', 'replace').strip()
            if answer == 'ok':
                return 0
            print('brimd: %s' % (answer or 'the server exited while starting'), file=self.stderr)
            return 1
        os.close(read_end)
        try:
            os.setsid()
            self.run_main(layout, warnings, write_end)
            code = 0
        except BrimError as err:
            self._tell(write_end, str(err))
            code = 1
        except BaseException:
            self._tell(write_end, sysloggable_excinfo(*sys.exc_info()))
            code = 1
        logging.shutdown()
        os._exit(code)

    @staticmethod
    def _tell(fd: int, text: str) -> None:
        try:
            os.write(fd, text.encode('utf-8'))
            os.close(fd)
        except OSError:
            pass

    def run_main(self, layout: list, warnings: list[str], ready_fd: int) -> None:
        """The daemonized main process: runs until HUP or TERM."""
        # Log handlers are opened here, before privileges drop, and inherited
        # by every supervisor, worker and daemon (a root-only log file works).
        logger = self.setup_main_logger(console=self.output)
        for sub in self.subservers:
            try:
                sub.setup_logger(console=self.output)
            except OSError as err:
                raise StartupError('[brim] log_file = %r: cannot open: %s' % (
                    self.values['log_file'], err.strerror)) from None
        if not self.output:
            capture_exceptions_stdout_stderr(
                lambda *exc_info: logging.getLogger(_current_route()).error(
                    'uncaught exception: %s', sysloggable_excinfo(*exc_info)),
                lambda line: logging.getLogger(_current_route()).info('STDOUT: %s', line),
                lambda line: logging.getLogger(_current_route()).error('STDERR: %s', line))
        my_pid = os.getpid()
        if self.pid_file:
            try:
                pidfile.write_pid(self.pid_file, my_pid)
            except OSError as err:
                raise StartupError('[brim] pid_file = %r: cannot write: %s' % (self.pid_file, err.strerror)) from None
        self.drop_privileges()
        self.stats = SharedStats(StatsLayout.from_json(layout))
        self.stats.start_time = now()
        for line in warnings:
            logger.warning('%s', line)
        set_title('brimd: main')
        logger.info('started (pid %d): %s', my_pid, '; '.join(sub.describe() for sub in self.subservers))
        os.write(ready_fd, b'ok')
        os.close(ready_fd)
        try:
            sustain_workers(len(self.subservers), self.run_supervisor, logger, name='supervisor',
                            label=lambda i: 'supervisor [%s]' % self.subservers[i].name,
                            on_stop=self.on_main_stop, wait_on_hup=False, watch_parent=False)
        finally:
            if self.pid_file:
                pidfile.remove_pid(self.pid_file, my_pid)
            logger.info('main process (pid %d) exiting', my_pid)

    def on_main_stop(self, signum: int) -> None:
        if signum == signal.SIGHUP:
            for sub in self.ip_subservers():
                sub.close_sockets()

    def run_supervisor(self, index: int) -> int:
        sub = self.subservers[index]
        _ROUTE[0] = 'brim.' + sub.name
        set_title('brimd: %s supervisor' % sub.name)
        logger = sub.logger  # configured in main before privileges dropped
        for other in self.ip_subservers():
            if other is not sub:
                other.close_sockets()
        buckets = sub.bucket_names()
        what = 'daemon' if sub.kind == DAEMONS else 'worker'

        def on_stop(signum: int) -> None:
            if signum == signal.SIGHUP:
                sub.close_sockets()

        sustain_workers(sub.worker_count(), lambda i: self.run_worker(sub, i), logger, name=what,
                        label=lambda i: '%s %s' % (what, buckets[i]) if what == 'daemon' else '%s %d' % (what, i),
                        on_stop=on_stop)
        return 0

    def run_worker(self, sub: Subserver, index: int) -> int:
        assert self.stats is not None
        bucket = sub.bucket_names()[index]
        what = 'daemon %s' % bucket if sub.kind == DAEMONS else 'worker %d' % index
        set_title('brimd: %s' % what if sub.kind == DAEMONS else 'brimd: %s %s' % (sub.name, what))
        logger = sub.logger
        parent = os.getppid()
        try:
            sub.load_apps()
        except BrimError as err:
            logger.critical('%s cannot start: %s', what, err)
            return EXIT_BOOT_FAILED
        stats = self.stats.bucket(sub.name, bucket)
        stats.set('start_time', now())
        if isinstance(sub, DaemonsSubserver):
            return sub.run_daemon(index, stats, logger)
        try:
            _use_hub(sub.values['eventlet_hub'])
            runner = sub.make_runner(index, stats)
        except Exception:
            logger.critical('%s cannot start: %s', what, sysloggable_excinfo(*sys.exc_info()))
            return EXIT_BOOT_FAILED
        logger.debug('%s (pid %d) serving', what, os.getpid())
        run_green([runner], logger, parent_pid=parent)
        return 0

    def cmd_no_daemon(self) -> int:
        """Serve in the foreground in this one process (no daemons)."""
        self.load_conf()
        self.bind_all()
        logger = self.setup_main_logger(console=True)
        for sub in self.subservers:
            sub.setup_logger(console=True)
        self.drop_privileges()
        warnings = list(self.server_conf.warnings) if self.server_conf else []
        rows = []
        runnable = []
        for sub in self.subservers:
            if isinstance(sub, DaemonsSubserver):
                logger.warning('[%s] daemons are not run in the foreground; use brimd start', sub.name)
                continue
            for app in sub.load_apps():
                warnings.extend(app.warnings)
            rows.append((sub.name, sub.stats_rows()[:1]))
            runnable.append(sub)
        for line in warnings:
            logger.warning('%s', line)
        self.stats = SharedStats(StatsLayout(rows))
        self.stats.start_time = now()
        _use_hub(self.values['eventlet_hub'])
        runners = []
        for sub in runnable:
            stats = self.stats.bucket(sub.name, '0')
            stats.set('start_time', now())
            runners.append(sub.make_runner(0, stats))
        logger.info('serving in the foreground (pid %d): %s', os.getpid(),
                    '; '.join(sub.describe() for sub in runnable))
        run_green(runners, logger, foreground=True)
        return 0

    def _signal_and_wait(self, signum: int) -> tuple[Optional[int], bool]:
        """Signal the running main process; return (pid, exited in time)."""
        pid = pidfile.read_pid(self.pid_file) if self.pid_file else None
        if not pidfile.is_running(pid):
            return pid, False
        assert pid is not None
        os.kill(pid, signum)
        deadline = time.monotonic() + PID_WAIT_TIME
        while time.monotonic() < deadline:
            if not pidfile.is_running(pid):
                return pid, True
            time.sleep(0.05)
        raise StartupError('%d did not exit within %d seconds of %s' % (pid, PID_WAIT_TIME, signal.Signals(signum).name))

    def _not_running(self, pid: Optional[int]) -> None:
        self.say('%d is not running' % pid if pid else 'not running')

    def cmd_stop(self) -> int:
        self.load_conf()
        pid, exited = self._signal_and_wait(signal.SIGTERM)
        if not exited or pid is None:
            self._not_running(pid)
            return 0
        self.say('%d stopped' % pid)
        return 0

    def cmd_shutdown(self) -> int:
        self.load_conf()
        pid, exited = self._signal_and_wait(signal.SIGHUP)
        if not exited or pid is None:
            self._not_running(pid)
            return 0
        self.wait_ports_released()
        self.say('%d shut down' % pid)
        return 0

    def wait_ports_released(self) -> None:
        """Wait until every configured port can be bound again.

        Raises:
            StartupError: if one is still in use after PORT_WAIT_TIME.
        """
        for sub in self.ip_subservers():
            if not sub.port:
                continue
            try:
                if isinstance(sub, (WSGISubserver, TCPSubserver)):
                    sock = get_listening_tcp_socket(sub.ip, sub.port, 1, PORT_WAIT_TIME)
                else:
                    sock = get_listening_udp_socket(sub.ip, sub.port, PORT_WAIT_TIME)
            except StartupError as err:
                if 'ermission' in str(err):
                    continue  # a privileged port we cannot probe
                raise StartupError('[%s] port still in use: %s' % (sub.name, err)) from None
            sock.close()

    def cmd_restart(self) -> int:
        """Check the new conf and apps, retire the running server, start anew."""
        self.load_conf()
        self.check_pid_file_writable()
        layout, warnings = self.probe()
        pid, exited = self._signal_and_wait(signal.SIGHUP)
        if exited:
            self.wait_ports_released()
        self.bind_all()
        return self.daemonize(layout, warnings)

    def cmd_status(self) -> int:
        """LSB: 0 running, 1 dead with a pid file, 3 not running."""
        self.load_conf()
        pid = pidfile.read_pid(self.pid_file) if self.pid_file else None
        if pid is None:
            self.say('not running')
            return 3
        if pidfile.is_running(pid):
            self.say('%d is running' % pid)
            return 0
        self.say('%d is not running' % pid)
        return 1

    def cmd_check(self) -> int:
        """Validate everything a start would; print what would run."""
        self.load_conf()
        for sub in self.ip_subservers():
            sub.load_tls()
        if self.pid_file:
            directory = os.path.dirname(self.pid_file) or '.'
            if not os.access(directory, os.W_OK):
                print('brimd: warning: [brim] pid_file = %r: directory not writable by this user' % self.pid_file,
                      file=self.stderr)
        _, warnings = self.probe()
        for line in warnings:
            print('brimd: warning: %s' % line, file=self.stderr)
        self.say('conf files: %s' % ', '.join(self.conf.files))
        user = self.values.get('user') or '(current user)'
        self.say('pid file: %s; user: %s; group: %s' % (self.pid_file or '(none)', user,
                                                         self.values.get('group') or '(default)'))
        for each in self.subservers:
            self.say(each.describe())
        self.say('conf OK')
        return 0


_ROUTE = ['brim.main']


def _current_route() -> str:
    return _ROUTE[0]


def _use_hub(hub: str) -> None:
    eventlet = import_eventlet()
    if hub:
        eventlet.hubs.use_hub(hub)
