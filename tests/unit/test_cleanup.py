"""The test suite's own cleanup fails loudly under CI when it cannot clean the broker: a
run must never pass while leaving quorum queues behind (each holds broker file handles)."""

from __future__ import annotations

import pytest

from tests.conftest import delete_matching


def test_cleanup_that_cannot_reach_the_management_api_fails_under_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:1")
    with pytest.raises(pytest.fail.Exception, match="could not clean the broker"):
        delete_matching("amqp://guest:guest@127.0.0.1:5672/", lambda name: True)


def test_elsewhere_it_warns(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("RABBITMQ_MANAGEMENT_URL", "http://127.0.0.1:1")
    with pytest.warns(UserWarning, match="could not clean the broker"):
        assert delete_matching("amqp://guest:guest@127.0.0.1:5672/", lambda name: True) == 0
