"""The loopback guard in conftest.py must itself work, or the third-party tests prove
nothing about staying off the network."""

import socket
import urllib.request

import pytest

import conftest


def test_a_connect_outside_loopback_is_refused_and_recorded():
    before = len(conftest._escapes)
    with pytest.raises(OSError):
        # TEST-NET-1: refused by the guard before any packet is sent.
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    with pytest.raises(OSError):
        urllib.request.urlopen("http://example.com/", timeout=1)
    recorded = conftest._escapes[before:]
    assert any("192.0.2.1" in e for e in recorded), recorded
    assert any("example.com" in e for e in recorded), recorded
    # Expected here; do not fail this test for them.
    del conftest._escapes[before:]


def test_loopback_is_allowed(base_url):
    with urllib.request.urlopen(base_url + "/api/version", timeout=5) as reply:
        assert reply.status == 200
