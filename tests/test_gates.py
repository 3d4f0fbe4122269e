"""Gates: the linter and the type checker pass on the whole tree (STYLE.md 20)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_ruff():
    pytest.importorskip('ruff')
    result = _run('ruff', 'check', 'brim', 'tests', 'bin', 'bench', 'examples', 'docs')
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy(tmp_path):
    pytest.importorskip('mypy')
    # A fresh cache: a stale one once hid an error that a clean clone showed.
    result = _run('mypy', '--cache-dir', str(tmp_path / 'mypy-cache'), 'brim', 'examples')
    assert result.returncode == 0, result.stdout + result.stderr
