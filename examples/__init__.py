"""A small key-value service built on brimd: an example to copy.

One conf (``examples/brimd.conf``) deploys every kind of brimd app, all
sharing one store:

================== ================================================
``store``          The storage: one file per key in a directory, so every
                   process (TCP workers, WSGI workers, the daemon) sees the
                   same data.
``kv_tcp``         ``[tcp]``: a line protocol (``SET k v``, ``GET k``,
                   ``DEL k``).
``kv_api``         A WSGI app: a JSON HTTP API (``GET``/``PUT``/``DELETE
                   /kv/<key>``), behind ``brim.wsgi_basic_auth``.
``request_id``     A WSGI middleware: ``X-Request-Id`` on every response.
``statsd_udp``     ``[udp]``: counts statsd counter datagrams (``name:1|c``)
                   into ``/stats``.
``snapshot``       A daemon: writes the whole store to one JSON file every
                   few seconds, atomically.
================== ================================================

Run it from the repository root (see ``examples/brimd.conf``)::

    mkdir -p /tmp/brim-kv
    PYTHONPATH=. .venv/bin/brimd -c examples/brimd.conf start

``tests/functional/test_tutorial.py`` runs this very conf and checks every
claim made here.
"""
