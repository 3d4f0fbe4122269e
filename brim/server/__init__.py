"""The Brim.Net Core Server, brimd.

Normally you configure and run ``brimd`` rather than use this package; see
``brimd.conf-sample`` for the options. The pieces: :mod:`brim.server.cli`
(command line), :mod:`brim.server.master` (the main process and commands),
:mod:`brim.server.subserver` (base classes, green run loop), and one module
per kind: :mod:`~brim.server.wsgi`, :mod:`~brim.server.tcp`,
:mod:`~brim.server.udp`, :mod:`~brim.server.daemons`.
"""

from brim.server.cli import main
from brim.server.daemons import DaemonsSubserver
from brim.server.master import DEFAULT_CONF_FILES, PID_WAIT_TIME, Server
from brim.server.subserver import IPSubserver, Subserver
from brim.server.tcp import TCPSubserver
from brim.server.udp import UDPSubserver
from brim.server.wsgi import HTTP_CLIENT_DISCONNECT, WSGISubserver

__all__ = [
    'DEFAULT_CONF_FILES', 'DaemonsSubserver', 'HTTP_CLIENT_DISCONNECT', 'IPSubserver', 'PID_WAIT_TIME',
    'Server', 'Subserver', 'TCPSubserver', 'UDPSubserver', 'WSGISubserver', 'main',
]
