"""The per-call records' quick ``__init__`` (router._decision._quick_init) keeps the dataclass
contract: same signature and defaults as the generated one, frozen, equal, hashable."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from router._decision import AttemptRecord, Candidate, Decision, Outcome, ResponseInfo


@pytest.mark.parametrize("cls", [AttemptRecord, Candidate, Decision, ResponseInfo])
def test_the_quick_init_has_the_dataclass_signature_and_keeps_it_frozen(cls: type) -> None:
    # The signature a dataclass of these fields generates, built again from the fields.
    plain = dataclasses.make_dataclass(
        "Plain",
        [
            (f.name, f.type) if f.default is dataclasses.MISSING else (f.name, f.type, f.default)
            for f in dataclasses.fields(cls)
        ],
        frozen=True,
        slots=True,
    )
    assert str(inspect.signature(cls)) == str(inspect.signature(plain))
    required = {
        f.name: f"v-{f.name}" for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
    }
    made = cls(**required)
    twin = plain(**required)
    for f in dataclasses.fields(cls):
        assert getattr(made, f.name) == getattr(twin, f.name), f.name
    assert made == cls(*required.values())  # positional as keyword
    assert hash(made) == hash(cls(**required))
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(made, name, "changed")
    assert getattr(dataclasses.replace(made, **{name: "other"}), name) == "other"
    if required:
        with pytest.raises(TypeError):
            cls()


def test_an_attempt_record_reads_back_what_it_was_given() -> None:
    record = AttemptRecord(3, "a", "openai/a", Outcome.SUCCESS, 0.25, 2.0, hedge=True)
    assert (record.number, record.deployment, record.outcome, record.hedge) == (
        3, "a", Outcome.SUCCESS, True,
    )  # fmt: skip
    assert record.error is None and record.cost_usd == 0.0 and record.started_s == 0.0
