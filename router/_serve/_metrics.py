"""The gateway's own observer: Prometheus counters and histograms, and the latest decisions.

`GatewayObserver` listens to every decision record (the router's observer seam) and keeps, in
this process and with no dependency:

- ``router_calls_total{group,deployment,outcome}``, ``router_attempts_total{group,deployment,
  outcome}``, ``router_failovers_total{group}``, ``router_escalations_total{group}``,
  ``router_cost_usd_total{group,deployment}``, ``router_breaker_transitions_total{deployment,
  state}``;
- histograms ``router_call_duration_seconds{group}`` and
  ``router_attempt_duration_seconds{group,deployment}``;
- at scrape time, from `Router.health()`: ``router_breaker_state{deployment}`` (0 closed,
  1 half-open, 2 open), ``router_deployment_score``, ``router_deployment_error_rate``,
  ``router_deployment_in_flight``;
- the gateway's ``router_gateway_requests_total{route,status}``, ``router_gateway_in_flight``
  and ``router_gateway_reloads_total{result}``.

Label sets are bounded (`_MAX_SERIES` per metric): beyond it new combinations are dropped, so a
caller sending endless model names cannot grow memory. ``render`` writes the Prometheus text
exposition format (version 0.0.4).
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from router._observe import BaseObserver

if TYPE_CHECKING:
    from router._breaker import Transition
    from router._decision import Decision
    from router._state import DeploymentHealth

__all__ = ["GatewayObserver"]

_MAX_SERIES: Final = 4096
_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
_BREAKER: Final = {"closed": 0, "half_open": 1, "open": 2}
_RECENT: Final = 50

Labels = tuple[tuple[str, str], ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class _Counter:
    __slots__ = ("help", "name", "values")

    def __init__(self, name: str, help_: str) -> None:
        self.name = name
        self.help = help_
        self.values: dict[Labels, float] = {}

    def add(self, labels: Labels, amount: float = 1.0) -> None:
        values = self.values
        if labels in values:
            values[labels] += amount
        elif len(values) < _MAX_SERIES:
            values[labels] = amount

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} counter")
        for labels, value in self.values.items():
            out.append(f"{self.name}{_labels(labels)} {value:.10g}")


class _Histogram:
    __slots__ = ("help", "name", "series")

    def __init__(self, name: str, help_: str) -> None:
        self.name = name
        self.help = help_
        # labels -> [bucket counts..., sum, count]
        self.series: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        series = self.series.get(labels)
        if series is None:
            if len(self.series) >= _MAX_SERIES:
                return
            series = self.series[labels] = [0.0] * (len(_BUCKETS) + 2)
        series[bisect.bisect_left(_BUCKETS, value)] += 1
        series[-2] += value
        series[-1] += 1

    def render(self, out: list[str]) -> None:
        out.append(f"# HELP {self.name} {self.help}")
        out.append(f"# TYPE {self.name} histogram")
        for labels, series in self.series.items():
            running = 0.0
            for bound, count in zip(_BUCKETS, series, strict=False):
                running += count
                le = f'le="{bound:g}"'
                out.append(f"{self.name}_bucket{_labels(labels, le)} {running:g}")
            inf = 'le="+Inf"'
            out.append(f"{self.name}_bucket{_labels(labels, inf)} {series[-1]:g}")
            out.append(f"{self.name}_sum{_labels(labels)} {series[-2]:.10g}")
            out.append(f"{self.name}_count{_labels(labels)} {series[-1]:g}")


class GatewayObserver(BaseObserver):
    """Counts what the router did (see the module docstring); one per gateway process."""

    capture_content = False

    def __init__(self) -> None:
        self.calls = _Counter("router_calls_total", "Routed calls by group, deployment, outcome.")
        self.attempts = _Counter(
            "router_attempts_total", "Attempts by group, deployment and outcome."
        )
        self.failovers = _Counter("router_failovers_total", "Failovers to another deployment.")
        self.escalations = _Counter("router_escalations_total", "Calls that escalated.")
        self.cost = _Counter("router_cost_usd_total", "Cost of served calls in US dollars.")
        self.transitions = _Counter(
            "router_breaker_transitions_total", "Breaker state changes by new state."
        )
        self.requests = _Counter(
            "router_gateway_requests_total", "HTTP requests answered, by route and status."
        )
        self.reloads = _Counter("router_gateway_reloads_total", "Config reloads by result.")
        self.call_seconds = _Histogram(
            "router_call_duration_seconds", "Routed call latency (all attempts) by group."
        )
        self.attempt_seconds = _Histogram(
            "router_attempt_duration_seconds", "Attempt latency by group and deployment."
        )
        self.recent: deque[tuple[Decision, str | None]] = deque(maxlen=_RECENT)
        """The latest decisions with their error's class name (made into lines only when the
        dashboard asks)."""
        # Dashboard tallies: served calls and cost per deployment, calls/escalated per group.
        self.served: dict[str, int] = {}
        self.served_cost: dict[str, float] = {}
        self.group_calls: dict[str, int] = {}
        self.group_escalated: dict[str, int] = {}
        self.started = time.time()

    # -- the Observer protocol -------------------------------------------------------------

    def call_finished(
        self,
        decision: Decision,
        error: BaseException | None,
        *,
        messages: Any = None,
        output: Any = None,
    ) -> None:
        group = decision.group
        deployment = decision.deployment or ""
        outcome = decision.outcome
        if outcome == "streaming":
            return  # counted when the stream ends
        self.calls.add((("group", group), ("deployment", deployment), ("outcome", outcome)))
        for attempt in decision.attempts:
            self.attempts.add(
                (("group", group), ("deployment", attempt.deployment), ("outcome", attempt.outcome))
            )
            self.attempt_seconds.observe(
                (("group", group), ("deployment", attempt.deployment)), attempt.latency_s
            )
        failovers = decision.failovers
        if failovers:
            self.failovers.add((("group", group),), failovers)
        if decision.escalations:
            self.escalations.add((("group", group),))
            if len(self.group_escalated) < _MAX_SERIES or group in self.group_escalated:
                self.group_escalated[group] = self.group_escalated.get(group, 0) + 1
        self.call_seconds.observe((("group", group),), decision.elapsed_s)
        if len(self.group_calls) < _MAX_SERIES or group in self.group_calls:
            self.group_calls[group] = self.group_calls.get(group, 0) + 1
        if decision.deployment is not None and decision.ok:
            self.cost.add((("group", group), ("deployment", deployment)), decision.cost_usd)
            if len(self.served) < _MAX_SERIES or deployment in self.served:
                self.served[deployment] = self.served.get(deployment, 0) + 1
                self.served_cost[deployment] = (
                    self.served_cost.get(deployment, 0.0) + decision.cost_usd
                )
        self.recent.append((decision, None if error is None else type(error).__name__))

    def recent_decisions(self) -> list[dict[str, Any]]:
        """The latest decisions, newest first: each one's call line (router._schema, the
        same fields as a record file's line and a log event's), plus what the page also
        shows, as the log event has it: the deployments tried and whether it streamed."""
        from router._schema import call_line

        out = []
        for d, error in reversed(self.recent):
            line = call_line(d)
            line["error"] = error  # the error's class name, as call_line writes it
            line["tried"] = [a.deployment for a in d.attempts]
            line["stream"] = d.stream
            out.append(line)
        return out

    def transition(self, transition: Transition) -> None:
        self.transitions.add(
            (("deployment", transition.deployment), ("state", str(transition.after.value)))
        )

    # -- output ----------------------------------------------------------------------------

    def render(self, health: Iterable[DeploymentHealth], gauges: Mapping[str, float]) -> str:
        """The Prometheus text exposition of every metric."""
        out: list[str] = []
        for counter in (
            self.calls,
            self.attempts,
            self.failovers,
            self.escalations,
            self.cost,
            self.transitions,
            self.requests,
            self.reloads,
        ):
            counter.render(out)
        self.call_seconds.render(out)
        self.attempt_seconds.render(out)
        rows = list(health)
        for name, help_, read in (
            ("router_breaker_state", "Breaker: 0 closed, 1 half-open, 2 open.",
             lambda h: _BREAKER.get(h.state, 2)),
            ("router_deployment_score", "Health score in [0, 1].", lambda h: h.score),
            ("router_deployment_error_rate", "Recent error rate.", lambda h: h.error_rate),
            ("router_deployment_in_flight", "Attempts in flight.", lambda h: h.in_flight),
        ):  # fmt: skip
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} gauge")
            for h in rows:
                out.append(f'{name}{{deployment="{_escape(h.deployment)}"}} {read(h):.6g}')
        for name, value in gauges.items():
            out.append(f"# TYPE {name} gauge")
            out.append(f"{name} {value:.6g}")
        out.append("")
        return "\n".join(out)
