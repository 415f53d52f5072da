"""The edge's options: ``[gateway]`` of providers.toml as `ServeOptions` (keys, limits)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from router._serve._keys import KeySpec

if TYPE_CHECKING:
    from router._config import Config

__all__ = ["ServeOptions", "options_for"]


@dataclass
class ServeOptions:
    """The edge's limits and keys (``[gateway]`` in providers.toml; see the README)."""

    max_body_bytes: int = 4 * 1024 * 1024
    max_concurrency: int = 512
    body_timeout: float = 30.0
    """Seconds a client may take to send its whole body (slow clients get a 408)."""
    drain_timeout: float = 30.0
    """SIGTERM: seconds in-flight calls and streams get to finish."""
    keys: list[KeySpec] = field(default_factory=list)
    admin_key: str | None = None
    watch: bool = False
    """Reload when the config file changes (polled once a second)."""
    config_path: str | None = None
    redis_url: str | None = None
    redis_prefix: str = "router:"


def options_for(config: Config, config_path: str | None) -> ServeOptions:
    """The edge's options from the config's ``[gateway]`` table.

    Raises `ConfigError` when a key's env reference names an unset variable: a gateway told to
    require keys must not start (or reload) open.
    """
    from router._config import ConfigError

    settings = config.gateway
    problems = settings.unset()
    if problems:
        raise ConfigError([f"{config.source}: {p}" for p in problems])
    options = ServeOptions(
        config_path=config_path,
        max_body_bytes=settings.max_body_bytes,
        max_concurrency=settings.max_concurrency,
        body_timeout=settings.body_timeout,
        drain_timeout=settings.drain_timeout,
        watch=settings.watch,
        admin_key=settings.resolve_admin_key(),
        keys=[KeySpec(k.name, k.resolve() or "", k.rpm, k.daily_budget_usd) for k in settings.keys],
    )
    if config.state.backend == "redis":
        options.redis_url = config.state.resolve_url()
        options.redis_prefix = config.state.key_prefix
    return options
