"""The ``brimd`` fixture: a deployment in tmp_path, killed by process group in teardown."""

from pathlib import Path

import pytest

from harness import Brimd


@pytest.fixture
def brimd(tmp_path: Path):
    deployment = Brimd(tmp_path)
    try:
        yield deployment
    finally:
        deployment.cleanup()
