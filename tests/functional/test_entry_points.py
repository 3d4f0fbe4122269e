"""The console script, ``python -m brim`` and ``bin/brimd`` are the same command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from brim import __version__
from harness import REPO


@pytest.mark.parametrize('argv', [
    [sys.executable, '-m', 'brim'],
    [sys.executable, str(REPO / 'bin' / 'brimd')],
    [str(Path(sys.executable).with_name('brimd'))],
], ids=['python -m brim', 'bin/brimd', 'console script'])
def test_entry_points_run_brimd(argv, tmp_path):
    if not Path(argv[0]).exists():
        pytest.skip('no brimd console script beside this Python (package not installed)')
    version = subprocess.run(argv + ['--version'], capture_output=True, text=True, timeout=30)
    assert (version.returncode, version.stdout.strip()) == (0, 'brimd %s' % __version__)
    helped = subprocess.run(argv + ['--help'], capture_output=True, text=True, timeout=30)
    assert helped.returncode == 0 and 'shutdown' in helped.stdout and '--conf' in helped.stdout
    status = subprocess.run(argv + ['-c', str(tmp_path / 'missing.conf'), 'status'], capture_output=True,
                            text=True, timeout=30)
    assert status.returncode == 1 and status.stderr.startswith('brimd: conf: no conf file could be read')


def test_unknown_command_is_a_usage_error():
    result = subprocess.run([sys.executable, '-m', 'brim', 'explode'], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "invalid choice: 'explode'" in result.stderr
