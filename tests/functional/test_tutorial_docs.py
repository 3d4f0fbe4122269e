"""docs/tutorial.md's "Mistakes" section, run as it is written.

Each ``###`` case of that section holds Python blocks (put together into
the ``mistakes`` module), one ``ini`` block (the conf; its ports are
replaced by free ones) and one ``text`` block: what brimd says. A case
whose text starts with ``brimd:`` is a ``brimd check`` error (exit 1, that
very line on stderr); any other is log lines of a started brimd, compared
with numbers (pids, seconds) masked.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from harness import REPO, free_port, port_accepts, wait_until

TUTORIAL = REPO / 'docs' / 'tutorial.md'
_BLOCK = re.compile(r'```(\w+)\n(.*?)```', re.S)
_LOG_PREFIX = re.compile(r'^\S+ \S+\[\d+\] ')


def _cases() -> list[tuple[str, list[str], str, str]]:
    text = TUTORIAL.read_text()
    section = text.split('\n## Mistakes', 1)[1].split('\n## ', 1)[0]
    cases = []
    for chunk in section.split('\n### ')[1:]:
        title = chunk.splitlines()[0]
        blocks = _BLOCK.findall(chunk)
        code = [body for kind, body in blocks if kind == 'python']
        confs = [body for kind, body in blocks if kind == 'ini']
        said = [body for kind, body in blocks if kind == 'text']
        assert len(confs) == 1 and len(said) == 1, title
        cases.append((title, code, confs[0], said[0].strip()))
    return cases


CASES = _cases()


def _masked(line: str) -> str:
    return re.sub(r'\d+(\.\d+)?', '0', line)


def test_the_section_has_every_mistake_the_issue_names():
    titles = ' / '.join(title for title, _, _, _ in CASES)
    for words in ('wrong signature', 'No `call =`', 'parse_conf', 'blocks the event loop', 'daemon that returns'):
        assert words in titles, titles


@pytest.mark.parametrize('title, code, conf, said', CASES, ids=[case[0] for case in CASES])
def test_mistake_gets_the_message_the_tutorial_shows(brimd, title, code, conf, said):
    brimd.write_module('mistakes', '\n\n'.join(code))
    ports = []

    def new_port(match: re.Match) -> str:
        ports.append(free_port())
        return 'port = %d' % ports[-1]
    brimd.write_conf(re.sub(r'port = \d+', new_port, conf))
    if said.startswith('brimd:'):
        result = brimd.run('check')
        assert result.returncode == 1
        assert result.stderr.strip() == said
        return
    brimd.start()
    if '[tcp]' in conf:
        wait_until(lambda: port_accepts(ports[0]), what='tcp port')
        with socket.create_connection(('127.0.0.1', ports[0]), timeout=20) as sock:
            sock.recv(10)  # until the watchdog's kill closes it
    expected = [_masked(line) for line in said.splitlines()]

    def logged() -> bool:
        lines = {_masked(_LOG_PREFIX.sub('', line)) for line in brimd.log().splitlines()}
        return all(line in lines for line in expected)
    wait_until(logged, 20, what='the lines the tutorial shows, in %s' % Path(brimd.log_path).name)


def _quoted() -> list[tuple[str, str]]:
    """``(file, excerpt)`` of every block of the tutorial that starts with a
    ``# examples/...`` line: what the tutorial says that file holds."""
    quoted = []
    for _, body in _BLOCK.findall(TUTORIAL.read_text()):
        first, _, rest = body.partition('\n')
        if first.startswith('# examples/'):
            quoted.append((first[2:].strip(), rest))
    return quoted


def test_the_tutorial_quotes_examples_as_they_are():
    quoted = _quoted()
    assert {name for name, _ in quoted} >= {'examples/brimd.conf', 'examples/kv_tcp.py', 'examples/kv_api.py',
                                            'examples/request_id.py', 'examples/statsd_udp.py',
                                            'examples/snapshot.py', 'examples/store.py'}
    for name, excerpt in quoted:
        assert excerpt.strip() and excerpt in (REPO / name).read_text(), 'docs/tutorial.md quotes %s wrongly:\n%s' % (
            name, excerpt)


def test_the_readme_links_the_tutorial():
    assert '(docs/tutorial.md)' in (REPO / 'README.md').read_text()
