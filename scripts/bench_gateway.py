"""Benchmark `router serve` against the provider directly and LiteLLM's proxy, in one run.

    python scripts/bench_gateway.py --phase speed      # latency and throughput (under the lock)
    python scripts/bench_gateway.py --phase rss --minutes 10 --rss-rate 10   # memory (nice 19)
    python scripts/bench_gateway.py --quick --no-litellm   # smoke run, router serve only
    python scripts/bench_gateway.py --phase speed --no-litellm --profile gw.prof  # cProfile
    python scripts/bench_gateway.py --phase speed --no-litellm --sample gw.json  # sampling
    python scripts/bench_gateway.py --phase speed --base-tree /tmp/main-before  # before/after
    (``--base-tree`` again for more checkouts: each is ``router serve @<folder name>``)

Every target runs in its own process against the same zero-latency simulated provider (one
more process): ``direct`` (the client calls the provider), ``router serve`` (``python -m
router._serve``, one group of one deployment, telemetry off, a gateway key) and LiteLLM's
proxy (``litellm --config cfg.yaml``, ``general_settings.master_key``, no database), both with
the same ``--workers``. LiteLLM's proxy is installed by this script into its own venv outside
the repository (``~/.cache/router-bench/litellm-proxy``; ``--litellm-venv`` to change it):
``litellm==1.110.2`` plus the proxy's dependencies. One more latency target, ``in-process
Router`` (``--no-inproc`` to leave it out), calls `Router.acompletion` in the benchmark's own
process over the same config: ``router serve`` minus it is the gateway's own HTTP edge (one
more loopback hop, uvicorn, the gateway's checks, JSON and headers); it minus ``direct`` is
the router and litellm.

Figures, with the targets interleaved round by round (so machine load hits them alike):

- added latency at concurrency 1: p50 and p99 of each round's requests minus direct's, for
  plain and streamed calls (streams: time to the first chunk, and to the end);
- throughput at concurrency 64: completed requests per second over each round's window;
- RSS over a steady run (``--phase rss``, ``--minutes``, at ``--rss-rate`` requests per
  second per target, a quarter of them streamed, both gateways at once; ``--rss-rate 0``: a
  closed loop at ``--rss-concurrency``): each gateway's resident memory (all its processes)
  after warm-up, every 5 s, and at the end.

The client is aiohttp on this process's event loop. On a 2-core machine the client, the
provider and the gateway share the cores, so absolute figures are the machine's; the ratios
between targets measured in the same run are the result. Goals (issue 15): p50 added <= 1 ms;
throughput >= 3x LiteLLM proxy's; RSS growth <= 5%.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _benchlib import (
    ROOT,
    _die_with_parent,
    free_port,
    machine_facts,
    quantile,
    raise_keyboard_interrupt,
    spread,
    write_json,
)

FLEET_SCRIPT = ROOT / "scripts" / "fleet.py"
LITELLM_PACKAGES = (
    "litellm==1.110.2", "fastapi", "uvicorn", "uvloop", "gunicorn", "granian", "backoff",
    "pyyaml", "rq", "orjson", "apscheduler", "fastapi-sso", "pyjwt", "python-multipart",
    "cryptography", "websockets", "hiredis", "semver", "expression", "mcp", "soundfile",
)  # fmt: skip
KEY = "sk-bench-gateway-key-0123456789"
MASTER = "sk-bench-litellm-master-0123456789"
BODY = {"model": "chat", "messages": [{"role": "user", "content": "Say hello."}]}
_START_S = 180.0


@dataclass
class Settings:
    phase: str = "all"
    """``speed`` (latency, throughput), ``rss`` (the steady run) or ``all``."""
    rounds: int = 5
    requests: int = 200
    """Requests per target per round at concurrency 1."""
    window_s: float = 5.0
    """Throughput window per target per round."""
    concurrency: int = 64
    workers: int = 1
    minutes: float = 10.0
    rss_concurrency: int = 8
    rss_rate: float = 0.0
    """Requests per second per target in the steady run (0: a closed loop)."""
    litellm: bool = True
    inproc: bool = True
    profile: Path | None = None
    sample: Path | None = None
    """Run router serve under the sampling profiler (scripts/_sampler.py), writing this file."""
    base_tree: list[Path] = field(default_factory=list)
    """Other checkouts (say, main before a change) to run as more targets, each named
    ``router serve @<folder name>``."""
    litellm_venv: Path = Path.home() / ".cache" / "router-bench" / "litellm-proxy"


class Server:
    """A server process: started, polled on `ready` until it answers 200, always stopped."""

    def __init__(
        self, name: str, argv: list[str], port: int, ready: str, env: dict[str, str],
        cwd: Path = ROOT,
    ) -> None:  # fmt: skip
        self.name = name
        self.argv = argv
        self.port = port
        self.ready = ready
        self.env = env
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            env={**os.environ, **self.env}, cwd=self.cwd,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        end = time.monotonic() + _START_S
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()}")
            try:
                with urllib.request.urlopen(self.url + self.ready, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not answer in {_START_S:g} s: {self.output()}")

    def output(self) -> str:
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    def rss_mb(self) -> float:
        """Resident memory of the process and its children, in MB."""
        import psutil  # type: ignore[import-untyped,unused-ignore]

        if self.proc is None:
            return float("nan")
        root = psutil.Process(self.proc.pid)
        total = 0
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total / 1e6

    def cpu_s(self) -> float:
        """CPU seconds (user + system) of the process and its children so far."""
        import psutil  # type: ignore[import-untyped,unused-ignore]

        if self.proc is None:
            return float("nan")
        root = psutil.Process(self.proc.pid)
        total = 0.0
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None


def ensure_litellm_proxy(venv: Path) -> Path:
    """The `litellm` command of a venv holding LiteLLM's proxy (created on first use)."""
    exe = venv / "bin" / "litellm"
    stamp = venv / ".bench-installed"
    want = " ".join(LITELLM_PACKAGES)
    if exe.exists() and stamp.exists() and stamp.read_text() == want:
        return exe
    print(f"bench_gateway: installing LiteLLM's proxy into {venv} (first run only)...")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         *LITELLM_PACKAGES],
        check=True,
    )  # fmt: skip
    stamp.write_text(want)
    return exe


def provider(port: int) -> Server:
    return Server(
        "provider", [sys.executable, str(FLEET_SCRIPT), "--provider", f"sim:{port}"], port,
        "/_sim/stats", {},
    )  # fmt: skip


def router_server(
    tmp: Path,
    base: str,
    workers: int,
    profile: Path | None = None,
    tree: Path | None = None,
    sample: Path | None = None,
) -> tuple[Server, Path]:
    """`router serve` from this checkout, or (`tree`) from another one (``--base-tree``)."""
    port = free_port()
    config = tmp / "providers.toml"
    config.write_text(
        "[router]\ndeadline = 30.0\n\n"
        '[[deployments]]\nname = "sim"\nmodel = "openai/sim"\n'
        f'api_base = "{base}"\napi_key = "sk-sim"\ntimeout = 30.0\ngroups = ["chat"]\n'
        "input_cost_per_token = 0.0000001\noutput_cost_per_token = 0.0000004\n\n"
        '[gateway]\nkeys = [{ name = "bench", key = "os.environ/BENCH_GATEWAY_KEY" }]\n'
        "max_concurrency = 4096\n"
    )
    # --profile: cProfile around the whole server (it writes the file when SIGTERM has
    # drained the server and `main` returns).
    prefix = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    if sample is not None:  # --sample: the sampling profiler around it, the same way
        prefix = [str(ROOT / "scripts" / "_sampler.py"), "--out", str(sample.resolve())]
    env = dict(_ROUTER_ENV)
    if tree is not None:  # that checkout's `router` package first (cwd and PYTHONPATH)
        env["PYTHONPATH"] = str(tree)
    server = Server(
        "router serve" if tree is None else f"router serve @{tree.name}",
        [sys.executable, *prefix, "-m", "router._serve", "--config", str(config), "--port",
         str(port), "--fleet", "off", "--workers", str(workers)],
        port, "/readyz", env, cwd=tree or ROOT,
    )  # fmt: skip
    return server, config


_ROUTER_ENV = {"BENCH_GATEWAY_KEY": KEY, "OTEL_SDK_DISABLED": "true", "ROUTER_RECORD_FILE": ""}


def litellm_server(tmp: Path, exe: Path, base: str, workers: int) -> Server:
    port = free_port()
    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n  - model_name: chat\n    litellm_params:\n      model: openai/sim\n"
        f"      api_base: {base}\n      api_key: sk-sim\n"
        "      input_cost_per_token: 0.0000001\n      output_cost_per_token: 0.0000004\n"
        f"general_settings:\n  master_key: {MASTER}\n"
        "litellm_settings:\n  telemetry: false\n"
    )
    return Server(
        "LiteLLM proxy",
        [str(exe), "--config", str(config), "--port", str(port), "--host", "127.0.0.1",
         "--num_workers", str(workers)],
        port, "/health/liveliness",
        {"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
         "DISABLE_SCHEMA_UPDATE": "true"},
    )  # fmt: skip


# --- the client -----------------------------------------------------------------------------


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    server: Server | None = None
    router: Any = None
    """In-process target: a `Router` called directly (no HTTP between client and router)."""

    def cpu_s(self) -> float | None:
        """CPU seconds so far of what serves this target: the server's processes, or for the
        in-process Router this (the benchmark's) process; None for direct."""
        if self.router is not None:
            return time.process_time()
        return self.server.cpu_s() if self.server is not None else None


def _stale(exc: BaseException) -> bool:
    # A keep-alive connection the server closed while it sat idle (targets take turns, so a
    # pooled connection can wait longer than a server's keep-alive timeout): not a failure of
    # the request, which is sent again on a fresh connection and timed from there.
    import aiohttp

    return isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError)


async def _plain(session: Any, target: Target, body: bytes) -> float:
    try:
        return await _plain_once(session, target, body)
    except Exception as exc:
        if not _stale(exc):
            raise
        return await _plain_once(session, target, body)


async def _streamed(session: Any, target: Target, body: bytes) -> tuple[float, float]:
    try:
        return await _streamed_once(session, target, body)
    except Exception as exc:
        if not _stale(exc):
            raise
        return await _streamed_once(session, target, body)


_MESSAGES = BODY["messages"]


async def _plain_once(session: Any, target: Target, body: bytes) -> float:
    if target.router is not None:
        start = time.perf_counter()
        await target.router.acompletion("chat", _MESSAGES)
        return time.perf_counter() - start
    start = time.perf_counter()
    async with session.post(target.url, data=body, headers=target.headers) as r:
        await r.read()
        if r.status != 200:
            raise RuntimeError(f"{target.name}: HTTP {r.status}")
    return time.perf_counter() - start


async def _streamed_once(session: Any, target: Target, body: bytes) -> tuple[float, float]:
    if target.router is not None:
        start = time.perf_counter()
        got = None
        stream = await target.router.acompletion("chat", _MESSAGES, stream=True)
        async for _ in stream:
            if got is None:
                got = time.perf_counter() - start
        done = time.perf_counter() - start
        return (got if got is not None else done), done
    start = time.perf_counter()
    first = None
    async with session.post(target.url, data=body, headers=target.headers) as r:
        if r.status != 200:
            raise RuntimeError(f"{target.name}: HTTP {r.status}")
        async for line in r.content:
            if first is None and line.startswith(b"data: "):
                first = time.perf_counter() - start
    end = time.perf_counter() - start
    return (first if first is not None else end), end


async def latency_round(session: Any, target: Target, n: int) -> dict[str, Any]:
    plain_body = json.dumps(BODY).encode()
    stream_body = json.dumps({**BODY, "stream": True}).encode()
    cpu_before = target.cpu_s()
    plain = [await _plain(session, target, plain_body) for _ in range(n)]
    cpu_after = target.cpu_s()
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None:
        cpu_ms = (cpu_after - cpu_before) / n * 1e3
    ttfc: list[float] = []
    total: list[float] = []
    for _ in range(max(10, n // 2)):
        first, end = await _streamed(session, target, stream_body)
        ttfc.append(first)
        total.append(end)
    return {"plain": plain, "ttfc": ttfc, "stream": total, "cpu_ms": cpu_ms}


async def throughput_round(
    session: Any, target: Target, concurrency: int, window: float
) -> tuple[float, float | None]:
    """Requests per second over the window, and the serving processes' CPU ms per request."""
    body = json.dumps(BODY).encode()
    done = 0
    errors = 0
    stop_at = time.perf_counter() + window

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < stop_at:
            try:
                await _plain(session, target, body)
                done += 1
            except Exception:
                errors += 1

    start = time.perf_counter()
    cpu_before = target.cpu_s()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu_after = target.cpu_s()
    elapsed = time.perf_counter() - start
    if errors:
        print(f"  {target.name}: {errors} failed requests in the throughput window")
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None and done:
        cpu_ms = (cpu_after - cpu_before) / done * 1e3
    return done / elapsed, cpu_ms


async def steady(session: Any, target: Target, settings: Settings) -> dict[str, Any]:
    """The RSS run of one target: warm-up, then `settings.minutes` of steady traffic."""
    assert target.server is not None
    server = target.server
    body = json.dumps(BODY).encode()
    stream_body = json.dumps({**BODY, "stream": True}).encode()
    minutes, rate = settings.minutes, settings.rss_rate
    count = 0
    failed = 0
    i = 0

    async def one() -> None:
        nonlocal count, failed, i
        i += 1
        try:
            if i % 4 == 0:
                await _streamed(session, target, stream_body)
            else:
                await _plain(session, target, body)
            count += 1
        except Exception:
            failed += 1

    async def closed_loop(until: float) -> None:
        while time.perf_counter() < until:
            await one()

    async def paced(until: float) -> None:
        # Open loop at `rate` requests per second: a modest, steady load.
        pending: set[asyncio.Task[None]] = set()
        next_at = time.perf_counter()
        while next_at < until:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(one())
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += 1.0 / rate
        if pending:
            await asyncio.gather(*pending)

    async def drive(until: float) -> None:
        if rate > 0:
            await paced(until)
        else:
            await asyncio.gather(*(closed_loop(until) for _ in range(settings.rss_concurrency)))

    await drive(time.perf_counter() + min(30.0, minutes * 60 * 0.1))
    before = server.rss_mb()
    end = time.perf_counter() + minutes * 60
    samples = [before]

    async def sampler() -> None:
        while time.perf_counter() < end:
            await asyncio.sleep(5)
            samples.append(server.rss_mb())

    count = failed = 0
    await asyncio.gather(sampler(), drive(end))
    after = server.rss_mb()
    return {
        "rss_mb_after_warmup": before,
        "rss_mb_end": after,
        "rss_mb_max": max([*samples, after]),
        "growth_pct": 100 * (after - before) / before,
        "requests": count,
        "failed": failed,
        "rate": rate,
        "minutes": minutes,
        "samples_mb": samples,
    }


async def run(settings: Settings, targets: list[Target]) -> dict[str, Any]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=settings.concurrency * 2, force_close=False)
    results: dict[str, Any] = {
        t.name: {"plain": [], "ttfc": [], "stream": [], "rps": [], "cpu_ms_c1": [],
                 "cpu_ms_c64": []}
        for t in targets
    }  # fmt: skip
    memory: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector) as session:
        if settings.phase in ("all", "speed"):
            await speed(session, settings, targets, results)
        if settings.phase in ("all", "rss") and settings.minutes > 0:
            gateways = [t for t in targets if t.server is not None and t.name != "direct"]
            print(f"steady run: {', '.join(t.name for t in gateways)} at once, "
                  f"{settings.minutes:g} min")  # fmt: skip
            runs = await asyncio.gather(*(steady(session, t, settings) for t in gateways))
            memory = {t.name: m for t, m in zip(gateways, runs, strict=True)}
    return summarize(results, memory, settings)


async def speed(
    session: Any, settings: Settings, targets: list[Target], results: dict[str, Any]
) -> None:
    """Latency at concurrency 1 (every target) and throughput (every HTTP target), by rounds."""
    for t in targets:  # warm-up: connections, litellm's first-call setup
        await latency_round(session, t, 20)
        if t.router is None:
            await throughput_round(session, t, settings.concurrency, 1.0)
    if settings.sample is not None:  # the sampler counts from here (after the warm-up)
        gateway = next(t.server for t in targets if t.name == "router serve")
        if gateway is not None and gateway.proc is not None:
            os.kill(gateway.proc.pid, signal.SIGUSR1)
    for r in range(settings.rounds):
        print(f"round {r + 1}/{settings.rounds}")
        order = targets if r % 2 == 0 else list(reversed(targets))
        for t in order:
            lat = await latency_round(session, t, settings.requests)
            cpu_ms = lat.pop("cpu_ms")
            if cpu_ms is not None:
                results[t.name]["cpu_ms_c1"].append(cpu_ms)
            for key, values in lat.items():
                results[t.name][key].append(
                    {"p50": quantile(values, 0.5), "p99": quantile(values, 0.99)}
                )
        for t in order:
            if t.router is not None:
                continue  # in-process: it would share the client's loop
            rps, cpu_ms = await throughput_round(
                session, t, settings.concurrency, settings.window_s
            )
            results[t.name]["rps"].append(rps)
            if cpu_ms is not None:
                results[t.name]["cpu_ms_c64"].append(cpu_ms)
            print(f"  {t.name}: {rps:.0f} req/s at concurrency {settings.concurrency}")


def summarize(raw: dict[str, Any], memory: dict[str, Any], settings: Settings) -> dict[str, Any]:
    direct = raw["direct"]
    out: dict[str, Any] = {"settings": {k: str(v) for k, v in vars(settings).items()}}
    out["machine"] = machine_facts()
    figures: dict[str, Any] = {}
    for name, data in raw.items():
        if not data["plain"]:
            continue  # no speed phase in this run
        entry: dict[str, Any] = {"rps": spread(data["rps"]) if data["rps"] else None}
        for kind in ("cpu_ms_c1", "cpu_ms_c64"):
            entry[kind] = spread(data[kind]) if data[kind] else None
        for kind in ("plain", "ttfc", "stream"):
            rounds = data[kind]
            entry[kind] = {q: spread([x[q] * 1e3 for x in rounds]) for q in ("p50", "p99")}
            if name != "direct":
                entry[f"{kind}_added_ms"] = {
                    q: spread([(x[q] - d[q]) * 1e3 for x, d in zip(rounds, direct[kind],
                                                                    strict=True)])
                    for q in ("p50", "p99")
                }  # fmt: skip
        figures[name] = entry
    out["figures"] = figures
    out["rounds"] = {
        name: {"rps": data["rps"], "cpu_ms_c64": data["cpu_ms_c64"],
               "cpu_ms_c1": data["cpu_ms_c1"],
               "plain_p50_ms": [x["p50"] * 1e3 for x in data["plain"]]}
        for name, data in raw.items() if data["plain"]
    }  # fmt: skip
    """Every round's own figures (the spreads above are over these)."""
    out["memory"] = memory
    if "in-process Router" in figures and "router serve" in figures:
        edge = [
            (g["p50"] - i["p50"]) * 1e3
            for g, i in zip(raw["router serve"]["plain"], raw["in-process Router"]["plain"],
                            strict=True)
        ]  # fmt: skip
        out["gateway_edge_p50_ms"] = spread(edge)
    out["throughput_ratio_vs_base"] = {
        name: spread([a / b for a, b in zip(raw["router serve"]["rps"], raw[name]["rps"],
                                            strict=True)])
        for name in figures if name.startswith("router serve @")
    }  # fmt: skip
    if "LiteLLM proxy" in figures:
        ratios = [
            a / b for a, b in zip(raw["router serve"]["rps"], raw["LiteLLM proxy"]["rps"],
                                  strict=True)
        ]  # fmt: skip
        out["throughput_ratio_vs_litellm"] = spread(ratios)
        out["throughput_ratio_vs_litellm_rounds"] = ratios
    return out


def report(results: dict[str, Any]) -> str:
    lines = ["", "target              plain p50 ms   p99 ms   added p50/p99 ms   ttfc p50 ms"
             "   added ttfc p50   req/s @64"]  # fmt: skip
    for name, f in results["figures"].items():
        added = f.get("plain_added_ms")
        added_text = (
            f"{added['p50']['median']:+.2f} / {added['p99']['median']:+.2f}" if added else "-"
        )
        ttfc_added = f.get("ttfc_added_ms")
        ttfc_text = f"{ttfc_added['p50']['median']:+.2f}" if ttfc_added else "-"
        rps = f["rps"]
        rps_text = (
            f"{rps['median']:>9.0f} ({rps['min']:.0f}-{rps['max']:.0f})" if rps else "        -"
        )
        lines.append(
            f"{name:<19} {f['plain']['p50']['median']:>10.2f} {f['plain']['p99']['median']:>8.2f}"
            f"   {added_text:>17}   {f['ttfc']['p50']['median']:>9.2f}   {ttfc_text:>14}"
            f"   {rps_text}"
        )
    for name, f in results["figures"].items():
        c1, c64 = f.get("cpu_ms_c1"), f.get("cpu_ms_c64")
        if c1 or c64:
            parts = [
                f"{label} {c['median']:.2f} ms ({c['min']:.2f}-{c['max']:.2f})"
                for label, c in (("c=1", c1), ("c=64", c64))
                if c
            ]
            lines.append(f"CPU per plain request, {name}: {', '.join(parts)}")
    edge = results.get("gateway_edge_p50_ms")
    if edge:
        lines.append(
            f"gateway edge (router serve - in-process Router), p50: {edge['median']:+.2f} ms "
            f"(rounds {edge['min']:+.2f} to {edge['max']:+.2f})"
        )
    for name, base in results.get("throughput_ratio_vs_base", {}).items():
        lines.append(
            f"throughput router serve / {name}: {base['median']:.3f}x "
            f"(rounds {base['min']:.3f}-{base['max']:.3f})"
        )
    ratio = results.get("throughput_ratio_vs_litellm")
    if ratio:
        lines.append(
            f"throughput router serve / LiteLLM proxy: {ratio['median']:.2f}x "
            f"(rounds {ratio['min']:.2f}-{ratio['max']:.2f})"
        )
        rounds = results.get("throughput_ratio_vs_litellm_rounds", [])
        if rounds:
            met = sum(r >= 3.0 for r in rounds)
            lines.append(
                f"  per round: {' '.join(f'{r:.2f}' for r in rounds)}; "
                f"at or above 3x (the goal) in {met} of {len(rounds)}"
            )
    for name, m in results["memory"].items():
        lines.append(
            f"RSS {name}: {m['rss_mb_after_warmup']:.1f} MB after warm-up -> "
            f"{m['rss_mb_end']:.1f} MB at the end ({m['growth_pct']:+.1f}%, max "
            f"{m['rss_mb_max']:.1f}; {m['requests']} requests, {m['failed']} failed, "
            f"{m['minutes']:g} min)"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def started(servers: Sequence[Server]) -> Iterator[None]:
    try:
        for s in servers:
            print(f"starting {s.name}...")
            s.start()
        yield
    finally:
        for s in reversed(servers):
            s.stop()


def parse_args(argv: Sequence[str] | None) -> tuple[Settings, Path | None]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--phase", choices=("all", "speed", "rss"), default="all")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=200, help="per target per round (c=1)")
    p.add_argument("--window", type=float, default=5.0, help="throughput window, s")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", type=int, default=1, help="gateway workers (both gateways)")
    p.add_argument("--minutes", type=float, default=10.0, help="steady run for RSS (0: none)")
    p.add_argument("--rss-concurrency", type=int, default=8)
    p.add_argument("--rss-rate", type=float, default=0.0,
                   help="steady run: requests/s per target (0: closed loop)")  # fmt: skip
    p.add_argument("--no-litellm", action="store_true", help="leave LiteLLM's proxy out")
    p.add_argument("--no-inproc", action="store_true", help="leave in-process Router out")
    p.add_argument(
        "--base-tree",
        type=Path,
        action="append",
        default=[],
        help="one more target: router serve from this checkout (before/after; repeatable)",
    )
    p.add_argument("--profile", type=Path, default=None,
                   help="run router serve under cProfile, writing this file")  # fmt: skip
    p.add_argument("--sample", type=Path, default=None,
                   help="run router serve under scripts/_sampler.py (JSON)")  # fmt: skip
    p.add_argument("--litellm-venv", type=Path, default=Settings.litellm_venv)
    p.add_argument("--quick", action="store_true", help="2 rounds, small counts, 0.2 min")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    a = p.parse_args(argv)
    s = Settings(
        phase=a.phase, rss_rate=a.rss_rate, inproc=not a.no_inproc, profile=a.profile,
        sample=a.sample,
        base_tree=a.base_tree,
        rounds=a.rounds, requests=a.requests, window_s=a.window, concurrency=a.concurrency,
        workers=a.workers, minutes=a.minutes, rss_concurrency=a.rss_concurrency,
        litellm=not a.no_litellm, litellm_venv=a.litellm_venv,
    )  # fmt: skip
    if a.quick:
        s.rounds, s.requests, s.window_s, s.minutes = 2, 30, 1.0, 0.2
    return s, a.json


def main(argv: Sequence[str] | None = None) -> int:
    settings, json_path = parse_args(argv)
    signal.signal(signal.SIGTERM, raise_keyboard_interrupt)  # unwind: stop the servers
    exe = ensure_litellm_proxy(settings.litellm_venv) if settings.litellm else None
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp_dir:
        tmp = Path(tmp_dir)
        prov = provider(free_port())
        base = f"{prov.url}/v1"
        gateway, config = router_server(
            tmp, base, settings.workers, settings.profile, sample=settings.sample
        )
        servers = [prov, gateway]
        targets = [
            Target("direct", f"{base}/chat/completions", {"content-type": "application/json"}),
            Target("router serve", f"{gateway.url}/v1/chat/completions",
                   {"content-type": "application/json", "authorization": f"Bearer {KEY}"},
                   gateway),
        ]  # fmt: skip
        for tree in settings.base_tree:
            before, _ = router_server(tmp, base, settings.workers, tree=tree)
            servers.append(before)
            targets.append(
                Target(before.name, f"{before.url}/v1/chat/completions",
                       {"content-type": "application/json", "authorization": f"Bearer {KEY}"},
                       before)
            )  # fmt: skip
        if exe is not None:
            proxy = litellm_server(tmp, exe, base, settings.workers)
            servers.append(proxy)
            targets.append(
                Target("LiteLLM proxy", f"{proxy.url}/v1/chat/completions",
                       {"content-type": "application/json",
                        "authorization": f"Bearer {MASTER}"}, proxy)
            )  # fmt: skip
        if settings.inproc and settings.phase != "rss":
            targets.insert(1, Target("in-process Router", "", {}, router=_inproc(config)))
        with started(servers):
            urllib.request.urlopen(
                urllib.request.Request(
                    f"{prov.url}/_sim/knobs",
                    data=json.dumps({"latency_ms": 0, "latency_jitter_ms": 0,
                                     "chunk_delay_ms": 0}).encode(),
                    method="POST", headers={"content-type": "application/json"},
                ),
                timeout=5,
            ).close()  # fmt: skip
            results = asyncio.run(run(settings, targets))
    print(report(results))
    write_json(json_path, results)
    return 0


def _inproc(config: Path) -> Any:
    """A `Router` over the gateway's own config, as `router serve` builds it (telemetry off)."""
    os.environ.update(_ROUTER_ENV)
    from _benchlib import load_litellm

    load_litellm()
    from router import Router

    return Router(str(config), telemetry=False)


if __name__ == "__main__":
    raise SystemExit(main())
