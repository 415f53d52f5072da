"""The one URL redaction: what of a URL may be shown in logs, errors and command output.

A password in a URL is as secret as an API key. `safe_url` replaces it with ``***``, keeping the
user name (``redis://user:***@host/0``: which account, not its secret); ``user=False`` drops the
user name too (``https://***@proxy:8443/v1``), for URLs whose user part may itself be a token
(an ``api_base`` of a provider or proxy).
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["safe_url"]


def safe_url(url: str, *, user: bool = True) -> str:
    """`url` without its password (and without its user name if `user` is false)."""
    try:
        parts = urlsplit(url)
        if parts.password is None and (user or parts.username is None):
            return url  # nothing secret in it
        port = parts.port
    except ValueError:  # unparseable: it may still hold a secret, so show none of it
        return "<invalid url>"
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    if port is not None:
        host += f":{port}"
    credentials = f"{parts.username or ''}:***" if user else "***"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))
