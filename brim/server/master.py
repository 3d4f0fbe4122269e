"""The main process of brimd: the commands of SPEC §2 and the process tree.

Process model (``start``)::

    brimd start ── binds every socket, probes the apps in a forked child,
    │              forks the daemon, waits for "ok", exits 0
    └─ main ─────── pid file, drops privileges, creates the shared stats,
       │            supervises one supervisor per subserver
       ├─ supervisor [wsgi] ── sustains `workers` WSGI workers
       ├─ supervisor [tcp]  ── sustains TCP workers
       └─ supervisor [daemons] ── sustains one process per daemon

Invariants: the main process never imports Eventlet, and neither it nor a
supervisor imports any app module; apps are imported in the probe child
(after privileges drop) and in each worker, so a replaced worker loads the
apps' code afresh. A WSGI, TCP or UDP supervisor imports Eventlet (creating
no hub) before it forks, so its workers share those pages instead of each
holding its own copy (``gc.freeze()`` then keeps the collector from
writing to, and so copying, those pages). Signals go down the tree: HUP
graceful, TERM now.
"""

from __future__ import annotations

import configparser
import gc
import json
import logging
import math
import os
import select
import signal
import socket
import sys
import time
import traceback
from typing import Any, Optional, TextIO

from brim.conf import read_conf
from brim.errors import BrimError, ConfError, StartupError
from brim.log import get_logger, reopen_log_files, sysloggable_excinfo
from brim.options import DAEMONS, ServerConf, resolve
from brim.server import control, pidfile, sdnotify
from brim.server.daemons import DaemonsSubserver
from brim.server.subserver import IPSubserver, Subserver, import_eventlet, now, run_green, set_title
from brim.server.tcp import TCPSubserver
from brim.server.udp import UDPSubserver
from brim.server.wsgi import WSGISubserver
from brim.service import (
    EXIT_BOOT_FAILED, Recycler, Supervisor, capture_exceptions_stdout_stderr, droppriv,
    get_listening_tcp_socket, get_listening_udp_socket, sustain_workers)
from brim.stats import SharedStats, StatsLayout

#: Conf files read when no -c is given; the later file's values win.
DEFAULT_CONF_FILES = ['/etc/brimd.conf', '~/.brimd.conf']
#: Seconds stop/shutdown/restart wait for the main process to exit.
PID_WAIT_TIME = 30
#: Seconds shutdown/restart wait for the ports to be released.
PORT_WAIT_TIME = 30
#: Seconds ``start`` waits for the app probe.
PROBE_TIME = 120
#: Seconds ``start``/``restart`` wait for every worker to serve.
READY_TIME = 60
#: Seconds past graceful_timeout before a supervisor kills a child that
#: has not cut itself off (a worker logs what it cuts at graceful_timeout).
KILL_MARGIN = 1.0

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
        #: Descriptors of the main process that its children close.
        self.main_only_fds: list[int] = []
        #: systemd's notification socket, if any (:mod:`brim.server.sdnotify`); taken out of the
        #: environment here, so only this process and the main process it forks notify systemd.
        self.notifier = sdnotify.Notifier.from_environ(unset=True)

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
        """The pid file path, from ``-p`` if given, else ``pid_file``; ``''`` for none (``-``)."""
        if self.pid_file_override is not None:
            return '' if self.pid_file_override == '-' else os.path.abspath(os.path.expanduser(self.pid_file_override))
        return '' if self.values.get('pid_file') == '-' else self.values.get('pid_file', '')

    def ip_subservers(self) -> list[IPSubserver]:
        """The WSGI, TCP and UDP subservers (those with a listening socket), in conf order."""
        return [sub for sub in self.subservers if isinstance(sub, IPSubserver)]

    # -- start-up steps -----------------------------------------------------------

    def bind_all(self, inherited: Optional[list[socket.socket]] = None) -> None:
        """Bind every listening socket (before privileges drop).

        Args:
            inherited: Listening sockets taken over from the running server
                (``restart``); those the conf still names are used as they
                are, the rest are closed here.

        Raises:
            StartupError: naming the section and address that failed.
        """
        spare = list(inherited or [])
        try:
            for sub in self.ip_subservers():
                try:
                    sub.bind(spare)
                except StartupError as err:
                    if str(err).startswith('['):
                        raise
                    raise StartupError('[%s] %s' % (sub.name, err)) from None
        except BrimError:
            for sub in self.ip_subservers():
                sub.close_sockets()
            raise
        finally:
            for sock in spare:
                sock.close()

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
        """Switch to ``[brim]`` ``user`` and ``group`` and set ``umask``
        (:func:`brim.service.droppriv`).

        Raises:
            StartupError: if the user or group does not exist or the switch is not permitted.
        """
        droppriv(self.values.get('user'), self.values.get('group'), self.values['umask'])

    def setup_main_logger(self, console: bool) -> logging.Logger:
        """Configure and return the main process's logger (``brim.main``).

        Args:
            console: True in the foreground (stderr when syslog is unreachable).

        Raises:
            StartupError: if ``log_file`` cannot be opened.
        """
        values = self.values
        try:
            self.logger = get_logger('main', values['log_name'], values['log_level'], values['log_facility'],
                                     console, values['log_file'])
        except OSError as err:
            raise StartupError('[brim] log_file = %r: cannot open: %s' % (values['log_file'], err.strerror)) from None
        return self.logger

    # -- commands -----------------------------------------------------------------

    def say(self, text: str) -> None:
        """Print one line of command output to :attr:`stdout` and flush it."""
        print(text, file=self.stdout)
        self.stdout.flush()

    def check_pid_file_writable(self) -> None:
        """Make sure the pid file can be written (creating it if missing), before starting.

        Raises:
            StartupError: naming the pid file and why it cannot be written.
        """
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
        """Fork the main process into the background (a new session) and run
        :meth:`run_main` there; wait for it to say it serves.

        Args:
            layout: The stats layout (:meth:`~brim.stats.StatsLayout.to_json` data) from :meth:`probe`.
            warnings: Lines for the main process to log as warnings.

        Returns:
            0 once every worker serves; 1, with the error on stderr, if the
            server could not start.
        """
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
        """The daemonized main process: runs until HUP or TERM.

        Writes ``ok`` to ``ready_fd`` (and the pid file) once every worker
        of every IP subserver is serving, or an error line if one cannot
        start, in which case everything stops again.
        """
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
        control_sock = control.listen(my_pid)
        self.drop_privileges()
        self.stats = SharedStats(StatsLayout.from_json(layout))
        self.stats.start_time = now()
        for line in warnings:
            logger.warning('%s', line)
        set_title('brimd: main')
        logger.info('starting (pid %d): %s', my_pid, '; '.join(sub.describe() for sub in self.subservers))
        readiness = _Readiness(self, ready_fd, my_pid)
        self.main_only_fds = [ready_fd]
        supervisor = Supervisor(
            len(self.subservers), self.run_supervisor, logger, name='supervisor',
            label=lambda i: 'supervisor [%s]' % self.subservers[i].name,
            on_stop=self.on_main_stop, wait_on_hup=False, watch_parent=False,
            on_pass=lambda: readiness.check(supervisor), on_usr1=reopen_log_files,
            readers={control_sock.fileno(): lambda: control.answer(control_sock, self)})
        supervisor.max_wait = 0.05  # until ready: start/restart wait on it
        try:
            supervisor.run()
        finally:
            control_sock.close()
            if self.pid_file:
                pidfile.remove_pid(self.pid_file, my_pid)
            logger.info('main process (pid %d) exiting', my_pid)

    def on_main_stop(self, signum: int) -> None:
        """On HUP, close the main process's listening sockets at once (graceful shutdown releases the ports)."""
        if signum == signal.SIGHUP:
            for sub in self.ip_subservers():
                sub.close_sockets()
        # Not the old main process of a restart (the pid file names its successor): systemd follows the new one.
        replaced = self.pid_file and pidfile.read_pid(self.pid_file) not in (None, os.getpid())
        if not replaced:
            self.notifier.notify_stopping('shutting down gracefully' if signum == signal.SIGHUP else 'stopping')

    def run_supervisor(self, index: int) -> int:
        """Run the supervisor of ``subservers[index]`` (in its own process):
        :func:`brim.service.sustain_workers` over its workers or daemons, until HUP or TERM.

        Returns:
            0, the process's exit status.
        """
        for fd in self.main_only_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        sub = self.subservers[index]
        _ROUTE[0] = 'brim.' + sub.name
        set_title('brimd: %s supervisor' % sub.name)
        logger = sub.logger  # configured in main before privileges dropped
        for other in self.ip_subservers():
            if other is not sub:
                other.close_sockets()
        if isinstance(sub, IPSubserver):
            import_eventlet()  # once, before the fork: every worker shares its pages
            gc.freeze()  # and the collector, never visiting these objects, leaves them shared
        buckets = sub.bucket_names()
        what = 'daemon' if sub.kind == DAEMONS else 'worker'
        values = sub.values
        assert self.stats is not None
        cells = [self.stats.bucket(sub.name, bucket) for bucket in buckets]

        def on_stop(signum: int) -> None:
            if signum == signal.SIGHUP:
                sub.close_sockets()

        def status(i: int, pid: int, restarts: int, recycles: int, last_exit: int, backoff: float) -> None:
            cells[i].set('pid', pid)
            cells[i].set('restart_count', restarts)
            cells[i].set('last_exit', last_exit)
            cells[i].set('backoff', math.ceil(backoff))
            if isinstance(sub, IPSubserver):
                cells[i].set('recycle_count', recycles)

        recycler = None
        if isinstance(sub, IPSubserver):
            unit = sub.unit_stat()
            recycler = Recycler(
                lambda i: cells[i].get(unit), values['max_requests'], values['max_requests_jitter'],
                values['max_lifetime'], values['max_lifetime_jitter'], values['max_rss'] * 2 ** 20,
                values['min_lifetime'])
        sustain_workers(sub.worker_count(), lambda i: self.run_worker(sub, i), logger, name=what,
                        label=lambda i: '%s %s' % (what, buckets[i]) if what == 'daemon' else '%s %d' % (what, i),
                        on_stop=on_stop, graceful_timeout=values['graceful_timeout'], kill_margin=KILL_MARGIN,
                        worker_timeout=values.get('worker_timeout', 0.0), recycler=recycler, status=status,
                        on_usr1=reopen_log_files)
        return 0

    def run_worker(self, sub: Subserver, index: int) -> int:
        """Run worker (or daemon) ``index`` of ``sub`` in this process: load the
        apps, then serve (:func:`~brim.server.subserver.run_green`) or run the daemon until stopped.

        Returns:
            The exit status: 0, a daemon's own status, or
            :data:`~brim.service.EXIT_BOOT_FAILED` if it cannot start.
        """
        signal.signal(signal.SIGUSR1, lambda signum, frame: reopen_log_files())
        assert self.stats is not None
        bucket = sub.bucket_names()[index]
        what = 'daemon %s' % bucket if sub.kind == DAEMONS else 'worker %d' % index
        set_title('brimd: %s' % what if sub.kind == DAEMONS else 'brimd: %s %s' % (sub.name, what))
        logger = sub.logger
        parent = os.getppid()
        if not isinstance(sub, DaemonsSubserver):
            import_eventlet()  # first, so its import-time warning is silenced even if an app imports it
        try:
            sub.load_apps()
        except BrimError as err:
            logger.critical('%s cannot start: %s', what, err)
            return EXIT_BOOT_FAILED
        stats = self.stats.bucket(sub.name, bucket)
        if isinstance(sub, DaemonsSubserver):
            stats.set('start_time', now())
            return sub.run_daemon(index, stats, logger)
        try:
            _use_hub(sub.values['eventlet_hub'])
            runner = sub.make_runner(index, stats)
        except Exception:
            logger.critical('%s cannot start: %s', what, sysloggable_excinfo(*sys.exc_info()))
            return EXIT_BOOT_FAILED
        stats.set('start_time', now())  # serving from here on (the main process waits for it)
        logger.debug('%s (pid %d) serving', what, os.getpid())
        run_green([runner], logger, parent_pid=parent, graceful_timeout=sub.values['graceful_timeout'],
                  worker_timeout=sub.values['worker_timeout'])
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

    def _signal_and_wait(self, signum: int, pid: Optional[int] = None) -> tuple[Optional[int], bool]:
        """Signal the running main process (``pid``, or the pid file's);
        return (pid, exited in time)."""
        if pid is None:
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
        if not pid:
            self.say('not running')
        elif pidfile.process_state(pid) in (None, 'Z', 'X'):
            self.say('%d is not running (stale pid file %s)' % (pid, self.pid_file))
        else:
            self.say('%d is not running (stale pid file %s: that pid is another program now)' % (pid, self.pid_file))

    def cmd_stop(self) -> int:
        """``stop``: SIGTERM the running server and wait for it to exit.

        Returns:
            0, also when it was not running (which it says).

        Raises:
            StartupError: if it has not exited within :data:`PID_WAIT_TIME` seconds.
        """
        self.load_conf()
        pid, exited = self._signal_and_wait(signal.SIGTERM)
        if not exited or pid is None:
            self._not_running(pid)
            return 0
        self.say('%d stopped' % pid)
        return 0

    def cmd_shutdown(self) -> int:
        """``shutdown``: SIGHUP the running server, wait for it to exit and for its ports to be free.

        Returns:
            0, also when it was not running (which it says).

        Raises:
            StartupError: if it has not exited within :data:`PID_WAIT_TIME` seconds,
                or a port is still in use after :data:`PORT_WAIT_TIME` seconds.
        """
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
        """Check the new conf and apps, start the new server on the running
        one's listening sockets, then retire the running one gracefully.

        The listening sockets pass from the old main process to this one
        over its control socket, so they are never closed: connections
        queued in the kernel are accepted by whichever server's workers
        are accepting. The old server is sent SIGHUP only once the new
        one's workers all serve; if they cannot, the old one serves on.
        """
        self.load_conf()
        self.check_pid_file_writable()
        layout, warnings = self.probe()
        pid = pidfile.read_pid(self.pid_file) if self.pid_file else None
        if not pidfile.is_running(pid):
            self.bind_all()
            return self.daemonize(layout, warnings)
        assert pid is not None
        try:
            self.notifier.notify_reloading('restarting: taking over the sockets of %d' % pid)
            _, inherited = control.ask(pid, 'sockets')
        except (OSError, ValueError) as err:
            # No control socket (a brimd from before it had one): stop first.
            self.stderr.write('brimd: warning: cannot take over the sockets of %d (%s); '
                              'shutting it down before starting\n' % (pid, err))
            self._signal_and_wait(signal.SIGHUP)
            self.wait_ports_released()
            self.bind_all()
            return self.daemonize(layout, warnings)
        code = 1
        try:
            self.bind_all(inherited)
            code = self.daemonize(layout, warnings)
        finally:
            if code:  # the new server's READY=1 ends the reload; if it failed, this one does
                self.notifier.send('READY=1', 'STATUS=restart failed; %d serves on' % pid)
        if code:
            self.say('%d serves on' % pid)
            return code
        self._signal_and_wait(signal.SIGHUP, pid)
        return 0

    def cmd_status(self) -> int:
        """LSB: 0 running, 1 dead with a pid file, 3 not running.

        When running, one line per worker and daemon follows: its pid,
        restarts, last exit status and backoff, from the live stats.
        """
        self.load_conf()
        pid = pidfile.read_pid(self.pid_file) if self.pid_file else None
        if pid is None:
            self.say('not running')
            return 3
        if not pidfile.is_running(pid):
            self._not_running(pid)
            return 1
        self.say('%d is running' % pid)
        try:
            snapshot, _ = control.ask(pid, 'stats')
        except (OSError, ValueError):
            return 0
        for line in status_table(snapshot):
            self.say(line)
        return 0

    def cmd_stats(self, watch: Optional[float] = None, count: Optional[int] = None) -> int:
        """``stats``: print the running server's live stats as a table
        (:func:`stats_table`), asked of its main process over the control
        socket, so no ``/stats`` app is needed.

        Args:
            watch: Print it again every ``watch`` seconds until Ctrl-C: the
                screen is cleared first when stdout is a terminal, else a
                blank line separates the tables.
            count: With ``watch``, stop after ``count`` tables.

        Returns:
            0 (also on Ctrl-C); 3 (LSB "not running") when no server runs,
            with one line on stderr; 1 when the server does not answer.
        """
        self.load_conf()
        clear = watch is not None and self.stdout.isatty()
        shown = 0
        try:
            while True:
                pid = pidfile.read_pid(self.pid_file) if self.pid_file else None
                if pid is None or not pidfile.is_running(pid):
                    print('brimd: not running%s' % (' (stale pid file %s)' % self.pid_file if pid else ''),
                          file=self.stderr)
                    return 3
                try:
                    snapshot, _ = control.ask(pid, 'stats')
                except (OSError, ValueError) as err:
                    if self._exiting_or_replaced(pid):
                        continue  # look again: the pid file names the next server, or none
                    if isinstance(err, OSError):
                        reason = 'on its control socket: %s' % err
                    else:  # closed without a word: a refused user
                        reason = "(only root and the server's own user are answered)"
                    print('brimd: %d did not answer %s' % (pid, reason), file=self.stderr)
                    return 1
                clock = time.time()
                started = snapshot.get('start_time', 0)
                lines = ['brimd %d: started %s, up %s' % (
                    pid, time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started)), _age(clock - started))]
                lines += stats_table(snapshot, clock)
                if clear:
                    self.stdout.write('\033[H\033[2J')
                elif shown:
                    lines.insert(0, '')
                self.stdout.write('\n'.join(lines) + '\n')
                self.stdout.flush()
                shown += 1
                if watch is None or (count and shown >= count):
                    return 0
                time.sleep(watch)
        except KeyboardInterrupt:
            return 0

    def _exiting_or_replaced(self, pid: int, wait: float = 2.0) -> bool:
        """True if main process ``pid`` exits, or the pid file names another,
        within ``wait`` seconds (its control socket closes as it exits)."""
        deadline = time.monotonic() + wait
        while True:
            if not pidfile.is_running(pid) or (pidfile.read_pid(self.pid_file) if self.pid_file else None) != pid:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

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


def status_table(snapshot: dict) -> list[str]:
    """Lines of ``brimd status``: one per worker or daemon of a stats snapshot.

    Columns: subserver, worker (or daemon), pid (``-`` while none runs),
    restarts, last exit status (``signal N`` for 128 + N), backoff seconds.
    """
    rows = [('subserver', 'worker', 'pid', 'restarts', 'last exit', 'backoff')]
    for name, entry in snapshot.items():
        if not isinstance(entry, dict):
            continue
        for bucket, stats in entry.items():
            if not isinstance(stats, dict) or 'pid' not in stats:
                continue
            last = stats.get('last_exit', 0)
            rows.append((name, bucket, str(stats['pid'] or '-'), str(stats.get('restart_count', 0)),
                         'signal %d' % (last - 128) if 128 < last < 128 + signal.NSIG else str(last),
                         '%ds' % stats['backoff'] if stats.get('backoff') else '-'))
    return aligned(rows)


def aligned(rows: list, left: Optional[int] = None) -> list[str]:
    """Lines of a table: columns two spaces apart, each as wide as its widest
    cell; the first ``left`` columns (all, if None) flush left, the others
    flush right. Trailing spaces are stripped."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    left = len(widths) if left is None else left
    return ['  '.join(cell.ljust(width) if i < left else cell.rjust(width)
                      for i, (cell, width) in enumerate(zip(row, widths, strict=True))).rstrip() for row in rows]


#: ``brimd stats`` counter columns: (header, stat); shown when some bucket has the stat.
STATS_COLUMNS = (('requests', 'request_count'), ('2xx', 'status_2xx_count'), ('4xx', 'status_4xx_count'),
                 ('5xx', 'status_5xx_count'), ('conns', 'connection_count'), ('open', 'open_connections'),
                 ('dgrams', 'datagram_count'))


def stats_table(snapshot: dict, clock: float) -> list[str]:
    """Lines of ``brimd stats``: one per worker or daemon of a stats snapshot,
    then a ``(total)`` row for each subserver with more than one.

    Columns: subserver, worker (index or daemon name), pid (``-`` while none
    runs), up (time since its ``start_time`` at ``clock``: ``45s``,
    ``12m03s``, ``5h02m``, ``3d04h``), restarts, then those of
    :data:`STATS_COLUMNS` that some bucket has: requests, 2xx, 4xx, 5xx
    (WSGI), conns (TCP), open (connections open now, WSGI and TCP), dgrams
    (UDP). Numbers are right-aligned; a bucket without a stat shows nothing.
    """
    columns = [(header, stat) for header, stat in STATS_COLUMNS if any(
        isinstance(stats, dict) and stat in stats
        for entry in snapshot.values() if isinstance(entry, dict) for stats in entry.values())]
    rows = [['subserver', 'worker', 'pid', 'up', 'restarts'] + [header for header, _ in columns]]
    for name, entry in snapshot.items():
        if not isinstance(entry, dict):
            continue
        buckets = [stats for stats in entry.values() if isinstance(stats, dict)]
        for bucket, stats in entry.items():
            if not isinstance(stats, dict):
                continue
            started = stats.get('start_time', 0)
            rows.append([name, bucket, str(stats.get('pid') or '-'),
                         _age(clock - started) if started and stats.get('pid', 1) else '-',
                         str(stats.get('restart_count', 0))] +
                        [str(stats[stat]) if stat in stats else '' for _, stat in columns])
        if len(buckets) > 1:
            rows.append([name, '(total)', '', '', str(sum(stats.get('restart_count', 0) for stats in buckets))] +
                        [str(sum(stats.get(stat, 0) for stats in buckets)) if any(stat in stats for stats in buckets)
                         else '' for _, stat in columns])
    return aligned(rows, left=2)


def _age(seconds: float) -> str:
    """A duration as ``45s``, ``12m03s``, ``5h02m`` or ``3d04h``."""
    seconds = max(int(seconds), 0)
    if seconds < 60:
        return '%ds' % seconds
    if seconds < 3600:
        return '%dm%02ds' % divmod(seconds, 60)
    if seconds < 86400:
        return '%dh%02dm' % (seconds // 3600, seconds % 3600 // 60)
    return '%dd%02dh' % (seconds // 86400, seconds % 86400 // 3600)


class _Readiness:
    """Tells ``start``/``restart`` (through ``ready_fd``) when the new main
    process is serving: every IP subserver's workers have set their
    ``start_time``. Until then nothing is written to the pid file, so a
    restart that fails leaves the old server's pid there."""

    def __init__(self, server: Server, ready_fd: int, pid: int) -> None:
        self.server = server
        self.fd: Optional[int] = ready_fd
        self.pid = pid
        self.deadline = time.monotonic() + READY_TIME

    def check(self, supervisor: Supervisor) -> None:
        if self.fd is None:
            return
        server = self.server
        assert server.stats is not None
        waiting = False
        for sub in server.ip_subservers():
            for bucket in sub.bucket_names():
                stats = server.stats.bucket(sub.name, bucket)
                if stats.get('start_time'):
                    continue
                if stats.get('last_exit') == EXIT_BOOT_FAILED and not stats.get('pid'):
                    return self.fail(supervisor, '[%s] worker %s could not start; see the log' % (sub.name, bucket))
                waiting = True
        if waiting:
            if time.monotonic() > self.deadline:
                self.fail(supervisor, 'the workers did not start serving within %d seconds' % READY_TIME)
            return
        if server.pid_file:
            try:
                pidfile.write_pid(server.pid_file, self.pid)
            except OSError as err:
                return self.fail(supervisor, '[brim] pid_file = %r: cannot write: %s' % (server.pid_file, err.strerror))
        server.logger.info('serving (pid %d)', self.pid)
        # Before 'ok': systemd follows this process before the start/restart command exits.
        server.notifier.notify_ready(self.pid, 'serving: %s' % '; '.join(sub.describe() for sub in server.subservers))
        self.tell('ok')
        supervisor.max_wait = 1.0

    def tell(self, text: str) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            Server._tell(fd, text)

    def fail(self, supervisor: Supervisor, reason: str) -> None:
        self.server.logger.critical('%s; stopping', reason)
        self.tell(reason)
        supervisor.stop(signal.SIGTERM)


_ROUTE = ['brim.main']


def _current_route() -> str:
    return _ROUTE[0]


def _use_hub(hub: str) -> None:
    eventlet = import_eventlet()
    if hub:
        eventlet.hubs.use_hub(hub)
