"""Run the simulated OpenAI-compatible provider fleet until Ctrl-C.

    python scripts/fleet.py                                  # alpha:4101 beta:4102 gamma:4103
    python scripts/fleet.py --provider alpha:4101 --provider beta:4102 --control 4100

Knobs change at run time over HTTP, on each provider's own port::

    curl -X POST localhost:4101/_sim/knobs -d '{"error_rate": 0.3}'
    curl localhost:4101/_sim/stats
    curl -X POST localhost:4101/_sim/reset

or, with ``--control PORT`` (needed to bring back a provider whose port is closed by
``{"outage": "refused"}``), on ``localhost:PORT/_sim/<provider>/knobs|stats|reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

try:
    from router._sim import DEFAULT_FLEET, Behavior, Fleet, parse_provider_spec
except ImportError:
    # Run from a checkout without `pip install -e .`: the package sits next to scripts/.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from router._sim import DEFAULT_FLEET, Behavior, Fleet, parse_provider_spec


def build_fleet(providers: list[str], *, seed: int, control_port: int | None) -> Fleet:
    """A fleet from ``name:port`` specs; known demo names keep their demo behaviour."""
    if not providers:
        return Fleet(DEFAULT_FLEET, seed=seed, control_port=control_port)
    specs: dict[str, tuple[int, Behavior]] = {}
    for text in providers:
        name, port = parse_provider_spec(text)
        behavior = DEFAULT_FLEET[name][1] if name in DEFAULT_FLEET else Behavior()
        specs[name] = (port, behavior)
    if len(specs) != len(providers):
        raise ValueError("each --provider name may be given once")
    return Fleet(specs, seed=seed, control_port=control_port)


async def serve(fleet: Fleet) -> None:
    """Start ``fleet``, print where it listens, and run until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on every platform; Ctrl-C then arrives as KeyboardInterrupt instead.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with fleet:
        for provider in fleet:
            latency = provider.behavior.latency_ms
            print(f"{provider.name:>10}  {provider.base_url}   (latency ~{latency:g} ms)")
        if fleet.control_url:
            print(f"{'control':>10}  {fleet.control_url}/<provider>/knobs|stats|reset")
        print("Ctrl-C to stop.", flush=True)
        await stop.wait()
    print("fleet stopped.")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--provider",
        action="append",
        default=[],
        metavar="NAME:PORT",
        help="a provider to run (repeatable; port 0 = any free port). "
        "Default: alpha:4101 beta:4102 gamma:4103.",
    )
    parser.add_argument(
        "--control",
        type=int,
        default=None,
        metavar="PORT",
        help="also serve /_sim/<provider>/knobs|stats|reset for every provider on PORT",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulated randomness")
    args = parser.parse_args(argv)
    try:
        fleet = build_fleet(args.provider, seed=args.seed, control_port=args.control)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(serve(fleet))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
