"""Redis URLs and the operator's password (contracts.redis_urls)."""

import pytest

from contracts.redis_urls import has_password, redacted, with_password


def test_it_puts_the_configured_password_in_a_url_without_one():
    environ = {"WEIR_REDIS_PASSWORD": "p@ss/w%rd"}
    assert with_password("redis://h:6379/5", environ) == "redis://:p%40ss%2Fw%25rd@h:6379/5"
    assert with_password("rediss://h/0", environ) == "rediss://:p%40ss%2Fw%25rd@h/0"
    # An ACL user named in the URL keeps its name.
    assert with_password("redis://weir@h/0", environ) == "redis://weir:p%40ss%2Fw%25rd@h/0"


def test_it_reads_the_password_from_a_file(tmp_path):
    secret = tmp_path / "redis-password"
    secret.write_text("from-a-file\n")
    environ = {"WEIR_REDIS_PASSWORD_FILE": str(secret)}
    assert with_password("redis://h/0", environ) == "redis://:from-a-file@h/0"


@pytest.mark.parametrize(
    "url",
    ["redis://:own@h/0", "redis://user:own@h/0", "memory://", "postgres://h/db"],
)
def test_it_leaves_urls_with_a_password_and_other_schemes_alone(url):
    assert with_password(url, {"WEIR_REDIS_PASSWORD": "other"}) == url


def test_it_leaves_urls_alone_without_a_configured_password():
    assert with_password("redis://h/0", {}) == "redis://h/0"
    assert with_password("redis://h/0", {"WEIR_REDIS_PASSWORD": ""}) == "redis://h/0"


def test_it_redacts_the_password():
    assert has_password("redis://:secret@h:1/0")
    assert not has_password("redis://h:1/0")
    assert redacted("redis://:secret@h:1/0") == "redis://:**@h:1/0"
    assert redacted("redis://weir:secret@h:1/0") == "redis://weir:**@h:1/0"
    assert redacted("redis://h:1/0") == "redis://h:1/0"
