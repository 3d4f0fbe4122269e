"""A WSGI middleware: tells every client its request's transaction id.

brimd gives each request a transaction id, ``env['brim.txn']``: the
request's ``X-Txn`` header if it has one, else a new UUID. It is in the
access-log line too, so a client quoting the ``X-Request-Id`` it got lets
you find its request in the log.

This shows the middleware pattern: wrap ``start_response`` to change the
response's headers, then call the next app. Put it first in ``apps =`` so
that every answer gets the header, even a 401 from the auth app after it.

Configuration::

    [wsgi]
    apps = request_id ...

    [request_id]
    call = examples.request_id.RequestID
    # header = X-Request-Id

Stats: none of its own.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Optional

from brim.options import app_option, parse_section, to_str


class RequestID:
    """Adds ``header: <env['brim.txn']>`` to every response.

    Args:
        name: The app's section name.
        parsed_conf: What :meth:`parse_conf` returned.
        next_app: The next WSGI app in the pipeline.
    """

    OPTIONS = (
        app_option('header', to_str, 'X-Request-Id', 'The response header that carries the transaction id.'),
    )

    def __init__(self, name: str, parsed_conf: dict, next_app: Callable[..., Iterable[bytes]]) -> None:
        self.name = name
        self.next_app = next_app
        self.header = parsed_conf['header']

    def __call__(self, env: dict, start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Call ``next_app`` with a ``start_response`` that adds the header (PEP 3333)."""
        def start_response_with_id(status: str, headers: list[tuple[str, str]],
                                   exc_info: Optional[Any] = None) -> Any:
            return start_response(status, headers + [(self.header, env['brim.txn'])], exc_info)
        return self.next_app(env, start_response_with_id)

    @classmethod
    def parse_conf(cls, name: str, conf: Any) -> dict:
        """Return this app's settings.

        Raises:
            brim.errors.ConfError: for a value that cannot be converted.
        """
        return parse_section(name, conf, cls.OPTIONS)

    @classmethod
    def stats_conf(cls, name: str, parsed_conf: dict) -> list[tuple[str, str]]:
        """Return the stats this app keeps (none)."""
        return []
