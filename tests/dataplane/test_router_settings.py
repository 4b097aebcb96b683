"""The router's Redis settings: a password comes from the environment, never argv."""

import pytest

from dataplane.router.__main__ import parse_args


def test_it_refuses_a_password_on_the_command_line(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--redis-url", "redis://:secret@127.0.0.1:6379/0"])
    error = capsys.readouterr().err
    assert "must not carry a password" in error
    assert "secret" not in error
    with pytest.raises(SystemExit):
        parse_args(["--broker-url=redis://:secret@127.0.0.1:6379/0"])


def test_it_adds_the_configured_password_to_its_urls(monkeypatch):
    monkeypatch.setenv("WEIR_REDIS_PASSWORD", "secret")
    monkeypatch.setenv("WEIR_ROUTING_REDIS_URL", "redis://127.0.0.1:6379/1")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/2")
    args = parse_args([])
    assert args.redis_url == "redis://:secret@127.0.0.1:6379/1"
    assert args.broker_url == "redis://:secret@127.0.0.1:6379/2"
    args = parse_args(["--redis-url", "redis://127.0.0.1:6380/0"])
    assert args.redis_url == "redis://:secret@127.0.0.1:6380/0"
