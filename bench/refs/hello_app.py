"""The hello-world WSGI app the references serve (``bench/compare.py``).

A plain WSGI callable, ``app``: every request gets ``200 OK`` and
``Hello, World!\\n`` with ``Content-Type`` and ``Content-Length`` (the same
headers and body as the brimd app the bench generates), and is counted in
this process's :class:`prefork.SharedCount` (``$BENCH_COUNT_DIR/<pid>``),
which is how the bench sees the split of requests between workers.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from prefork import SharedCount

BODY = b'Hello, World!\n'
HEADERS = [('Content-Length', str(len(BODY))), ('Content-Type', 'text/plain')]
COUNT = SharedCount()


def app(env: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Answer every request with ``Hello, World!``."""
    COUNT.add()
    start_response('200 OK', HEADERS)
    return [BODY]
