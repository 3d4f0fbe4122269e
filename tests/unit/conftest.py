"""Fixtures shared by the unit tests."""

import pytest


@pytest.fixture
def sockets():
    """A list to put sockets in; each is closed after the test."""
    made: list = []
    yield made
    for sock in made:
        sock.close()
