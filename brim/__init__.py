"""brim: deploy WSGI, TCP, UDP servers and daemons from one INI file.

The package itself only carries the version; the command is ``brimd``
(:mod:`brim.server`), the library modules are listed in the README.
"""

__version__ = '0.1.0'
