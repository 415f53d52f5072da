"""router._redact.safe_url: the one URL redaction (logs, errors, `router check`, `health`)."""

from __future__ import annotations

import pytest

from router._redact import safe_url


@pytest.mark.parametrize(
    ("url", "kept_user", "no_user"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0", "redis://***@host:6379/0"),
        ("redis://user:s3cret@host/0", "redis://user:***@host/0", "redis://***@host/0"),
        ("redis://host:6379", "redis://host:6379", "redis://host:6379"),
        ("https://tok@proxy.example/v1", "https://tok@proxy.example/v1",
         "https://***@proxy.example/v1"),
        ("redis://u:s3cret@[::1]:6379/0", "redis://u:***@[::1]:6379/0", "redis://***@[::1]:6379/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("redis://u:s3cret@host:99999/0", "<invalid url>", "<invalid url>"),
    ],
)  # fmt: skip
def test_safe_url(url: str, kept_user: str, no_user: str) -> None:
    assert safe_url(url) == kept_user
    assert safe_url(url, user=False) == no_user
    assert "s3cret" not in safe_url(url) + safe_url(url, user=False)
