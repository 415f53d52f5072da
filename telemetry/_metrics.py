"""Metrics from decision records, through the OpenTelemetry metrics API.

By group and deployment: calls (by outcome), attempts (by outcome), failovers, hedges, cost,
tokens, breaker transitions (counters); call and attempt latency and time to first chunk
(histograms); each deployment's breaker state (a gauge: 0 closed, 1 half-open, 2 open). Names
follow the GenAI semantic conventions where one exists (``gen_ai.client.operation.duration``,
``gen_ai.client.operation.time_to_first_chunk``); the routing figures are ``router.*``.
Tokens are a counter (``router.tokens``, by ``gen_ai.token.type``) rather than the
conventions' ``gen_ai.client.token.usage`` histogram: sums are what cost dashboards need, and
a histogram record costs as much as the rest of a call's metrics.

One `Instruments` per MeterProvider: creating an instrument twice makes the SDK warn, and the
breaker gauge must read one state map however many routers share the provider.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final

from opentelemetry import metrics

from router.telemetry._spans import CHAT, GROUP, OPERATION, OUTCOME, REQUEST_MODEL

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.util.types import AttributeValue

    from router._breaker import Transition
    from router._decision import Decision

DEPLOYMENT: Final = "router.deployment"
BREAKER_VALUES: Final[Mapping[str, int]] = {"closed": 0, "half_open": 1, "open": 2}

# Bucket advice from the GenAI semantic conventions (durations in s, tokens as counts).
_DURATION_BUCKETS: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
_TTFC_BUCKETS: Final = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
_MAX_ATTRIBUTE_SETS: Final = 8192
"""Bound on the attribute sets per counter (keys are group x deployment x outcome); beyond it
new combinations are dropped rather than grow memory without bound."""
TOKEN_TYPE: Final = "gen_ai.token.type"
ERROR_TYPE: Final = "error.type"

_COUNTERS: Final = (
    ("router.calls", "{call}", "Routed calls, by group, outcome and serving deployment."),
    ("router.attempts", "{attempt}", "Attempts, by group, deployment, outcome and hedge flag."),
    ("router.failovers", "{failover}", "Attempts that moved to another deployment, by group."),
    ("router.hedges", "{hedge}", "Hedge attempts, by group and the deployment hedged to."),
    ("router.cost", "USD", "Cost of served calls in US dollars, by group and deployment."),
    ("router.tokens", "{token}", "Tokens of served calls, by group, deployment and type."),
    ("router.breaker.transitions", "{transition}", "Breaker state changes, by new state."),
)

Attributes = Mapping[str, "AttributeValue"]


class Instruments:
    """The router's instruments on one meter, and the breaker-state map its gauge reads.

    Counters are summed here, in plain dicts, and reported through observable counters when
    the reader collects (every 60 s by default): a dict increment costs a fraction of an SDK
    ``Counter.add``, which validates and hashes its attributes on every call. Reported values
    are the same cumulative sums a ``Counter`` would export. Latencies go to SDK histograms
    (there is no observable histogram), one record per call and per attempt.
    """

    def __init__(self, meter: metrics.Meter) -> None:
        self.breakers: dict[str, str] = {}
        """Each deployment's breaker state as last reported (the gauge's source)."""
        self._lock = threading.Lock()
        self._sums: dict[str, dict[tuple[Fields, Values], float]] = {}
        self._attributes: dict[tuple[Fields, Values], Attributes] = {}
        for name, unit, description in _COUNTERS:
            self._sums[name] = {}
            meter.create_observable_counter(
                name, callbacks=[self._observer(name)], unit=unit, description=description
            )
        meter.create_observable_gauge(
            "router.breaker.state",
            callbacks=[self._observe_breakers],
            unit="1",
            description="Breaker state per deployment: 0 closed, 1 half-open, 2 open.",
        )
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration",
            "s",
            "Routed call duration, all attempts included, by group, outcome and deployment.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.attempt_duration = meter.create_histogram(
            "router.attempt.duration",
            "s",
            "Duration of each attempt (to its first chunk, for streams), by deployment.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.first_chunk = meter.create_histogram(
            "gen_ai.client.operation.time_to_first_chunk",
            "s",
            "Streams: time to the first chunk of the serving attempt, by deployment.",
            explicit_bucket_boundaries_advisory=_TTFC_BUCKETS,
        )

    # -- collection (the reader's thread) -------------------------------------------------------

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            from opentelemetry.metrics import Observation

            with self._lock:
                items = list(self._sums[name].items())
            attributes = self._attributes
            return [Observation(value, attributes[key]) for key, value in items]

        return observe

    def _observe_breakers(self, _options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        with self._lock:
            states = list(self.breakers.items())
        return [
            Observation(BREAKER_VALUES.get(state, 0), {DEPLOYMENT: name}) for name, state in states
        ]

    # -- recording (the caller's task) ----------------------------------------------------------

    def _add(self, name: str, fields: Fields, values: Values, amount: float) -> None:
        # Called with self._lock held. The attribute dict is built once per combination.
        sums = self._sums[name]
        key = (fields, values)
        if key in sums:
            sums[key] += amount
        elif len(sums) < _MAX_ATTRIBUTE_SETS:
            self._attributes[key] = _attributes(fields, values)
            sums[key] = amount

    def _attrs(self, fields: Fields, values: Values) -> Attributes:
        # Histogram attribute dicts, reused: the same few combinations repeat on every call.
        key = (fields, values)
        found = self._attributes.get(key)
        if found is None:
            found = _attributes(fields, values)
            if len(self._attributes) < 4 * _MAX_ATTRIBUTE_SETS:
                self._attributes[key] = found
        return found

    def transition(self, t: Transition) -> None:
        """Count a breaker transition and remember the deployment's new state."""
        with self._lock:
            self.breakers[t.deployment] = t.after.value
            self._add("router.breaker.transitions", _TRANSITION, (t.deployment, t.after.value), 1)

    def record(self, d: Decision, error_type: str | None) -> None:
        """Record one finished call."""
        group = d.group
        served = d.deployment or ""
        attempts = d.attempts
        response = d.response
        call_fields: Fields = _CALL
        call_values: Values = (CHAT, group, group, d.outcome, served)
        if error_type is not None:
            call_fields, call_values = _CALL_ERROR, (*call_values, error_type)
        with self._lock:
            self._add("router.calls", call_fields, call_values, 1)
            if d.failovers:
                self._add("router.failovers", _GROUP, (group,), d.failovers)
            for a in attempts:
                self._add(
                    "router.attempts", _ATTEMPT, (group, a.deployment, str(a.outcome), a.hedge), 1
                )
                if a.hedge:
                    self._add("router.hedges", _DEPLOYMENT, (group, a.deployment), 1)
            if served and d.cost_usd:
                self._add("router.cost", _DEPLOYMENT, (group, served), d.cost_usd)
            if served and response is not None:
                if response.input_tokens:
                    self._add(
                        "router.tokens", _TOKENS, (group, served, "input"), response.input_tokens
                    )
                if response.output_tokens:
                    self._add(
                        "router.tokens", _TOKENS, (group, served, "output"), response.output_tokens
                    )
            call = self._attrs(call_fields, call_values)
            per_attempt = [
                self._attrs(_ATTEMPT_LATENCY, (group, a.deployment, str(a.outcome)))
                for a in attempts
            ]
        # SDK instruments have their own locks: record outside ours.
        self.duration.record(d.elapsed_s, call)
        for a, attributes in zip(attempts, per_attempt, strict=True):
            self.attempt_duration.record(a.latency_s, attributes)
            if a.first_chunk_s is not None and a.outcome == "success":
                self.first_chunk.record(a.first_chunk_s, attributes)


Fields = tuple[str, ...]
Values = tuple["AttributeValue", ...]

# Attribute names per measurement (values are passed positionally, in this order).
_CALL: Final = (OPERATION, REQUEST_MODEL, GROUP, OUTCOME, DEPLOYMENT)
_CALL_ERROR: Final = (*_CALL, ERROR_TYPE)
_GROUP: Final = (GROUP,)
_DEPLOYMENT: Final = (GROUP, DEPLOYMENT)
_ATTEMPT: Final = (GROUP, DEPLOYMENT, OUTCOME, "router.hedge")
_ATTEMPT_LATENCY: Final = (GROUP, DEPLOYMENT, OUTCOME)
_TOKENS: Final = (GROUP, DEPLOYMENT, TOKEN_TYPE)
_TRANSITION: Final = (DEPLOYMENT, "router.breaker.to")


def _attributes(fields: Fields, values: Values) -> Attributes:
    return dict(zip(fields, values, strict=True))


_instruments: weakref.WeakKeyDictionary[metrics.MeterProvider, Instruments] = (
    weakref.WeakKeyDictionary()
)
_instruments_lock = threading.Lock()


def instruments_for(provider: metrics.MeterProvider) -> Instruments:
    """The router's instruments on `provider`, created once per provider."""
    with _instruments_lock:
        found = _instruments.get(provider)
        if found is None:
            found = _instruments[provider] = Instruments(provider.get_meter("router"))
        return found
