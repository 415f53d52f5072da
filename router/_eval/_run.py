"""``router eval run FILE``: a user's dataset through their own config, replayed or live.

The config is an ordinary providers.toml, loaded as production loads it (`load_config`:
environment overrides, env-referenced keys). Each policy is a model string the caller would
pass: by default the config's ``auto`` model when it has ``[[routes]]``, then every group
alone ("always <group>") as the baselines beside it.

- Replay (default): deployments answer with the item's recorded answers (``--bind
  DEPLOYMENT=MODEL``, else a deployment answers as the dataset model named like it or like
  its first group); correctness is the item's label for that model, else the scorer's verdict.
- Live (``--live``): the real litellm backend and the system clock; the scorer grades every
  answer against the item's ``reference``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from router._eval._data import Dataset
from router._eval._harness import Runner, RunResult, live_judge, replay_judge
from router._eval._policies import PolicySpec
from router._eval._replay import ReplayBackend

if TYPE_CHECKING:
    from router._config import Config
    from router._eval._scorers import Scorer

__all__ = ["default_bindings", "default_policies", "default_strong", "run_dataset"]


def default_strong(config: Config) -> str | None:
    """The group whose calls count as "strong": the top of the escalation chain, else the
    group with the highest-priced deployment."""
    groups = config.group_names()
    targets = [t for g in groups if (t := config.settings_for(g).escalate_to) is not None]
    if targets:
        top = targets[-1]
        seen = {top}
        while (nxt := config.settings_for(top).escalate_to) is not None and nxt not in seen:
            top = nxt
            seen.add(top)
        return top

    def price(group: str) -> float:
        return max(
            (d.input_cost_per_token or 0.0) + (d.output_cost_per_token or 0.0)
            for d in config.deployments_in(group)
        )

    priced = [g for g in groups if price(g) > 0]
    return max(priced, key=price) if priced else None


def default_policies(config: Config) -> list[str]:
    """The config's auto model (when it has routes), then each group alone."""
    policies = [config.router.auto_model] if config.routes else []
    return policies + config.group_names()


def default_bindings(config: Config, dataset: Dataset) -> dict[str, str]:
    """Deployment -> dataset model: its own name, else its first group, when the data has it."""
    out = {}
    for deployment in config.deployments:
        for candidate in (deployment.name, *deployment.groups):
            if candidate in dataset.models:
                out[deployment.name] = candidate
                break
    return out


async def run_dataset(
    dataset: Dataset,
    config: Config,
    *,
    scorer: Scorer | None,
    live: bool,
    policies: Sequence[str] | None = None,
    strong: str | None = None,
    bindings: Mapping[str, str] | None = None,
    imports: Sequence[str] = (),
    concurrency: int = 1,
    seed: int = 0,
    advance: Callable[[int], None] | None = None,
    observer: Callable[[PolicySpec], Any] | None = None,
    extra: Sequence[PolicySpec] = (),
) -> dict[str, Any]:
    """Every policy over every item; returns the report (see `router._eval` for the keys).

    `extra` are more policies with configs of their own (``--train``: the fitted ones)."""
    for module in imports:  # registers validators and classifiers the config names
        importlib.import_module(module)
    names = list(policies or default_policies(config))
    strong_group = strong or default_strong(config)
    strong_names = (
        set() if strong_group is None else {d.name for d in config.deployments_in(strong_group)}
    )
    notes: list[str] = []
    if live:
        if scorer is None:
            raise ValueError("live mode needs a scorer (--scorer)")
        runner = Runner(
            None,
            strong=strong_names,
            judge=live_judge(scorer),
            seed=seed,
            replay=False,
            observer=observer,
            advance=advance,
            concurrency=concurrency,
        )
    else:
        bound = dict(bindings or default_bindings(config, dataset))
        missing = [d.name for d in config.deployments if d.name not in bound]
        if missing:
            notes.append(f"not bound to any dataset model (calls to them fail): {missing}")
        backend = ReplayBackend(list(dataset.items), bound)
        runner = Runner(
            backend,
            strong=strong_names,
            judge=replay_judge(bound, scorer),
            seed=seed,
            observer=observer,
            advance=advance,
        )
    results: list[RunResult] = []
    for model in names:
        is_group = config.is_routable(model)  # a group or one deployment: a fixed choice
        spec = PolicySpec(
            name=f"always {model}" if is_group else model,
            family="always" if is_group else "configured",
            setting=f"model={model!r}",
            model=model,
            config=config,
        )
        results.append(await runner.run(spec, dataset.items))
    for spec in extra:
        results.append(await runner.run(spec, dataset.items))
    reference = next((r for r, m in zip(results, names, strict=True) if m == strong_group), None)
    strong_accuracy = reference.accuracy if reference is not None else None
    return {
        "dataset": dataset.name,
        "source": dataset.source,
        "mode": "live" if live else "replay",
        "config": config.source,
        "strong_group": strong_group,
        "items": {"test": len(dataset.items)},
        "table": [r.row(strong_accuracy) for r in results],
        "notes": notes,
    }


def fitted_policies(
    train: Dataset,
    config: Config,
    *,
    target: float,
    confidence: float | None,
    new_items: int | None,
    weak: str,
    strong: str,
    out: str,
    seed: int = 0,
) -> list[PolicySpec]:
    """``run --train FILE``: classifier-first (and the cascade, when the training items have
    the weak group's answers) fitted on `train`, each merged into `config` as
    ``router eval fit`` would have you merge its snippet (artifacts written to `out`).

    The merge goes through the loaded config's values (``model_dump``), so environment
    overrides already applied to `config` are kept, but the merged configs are not re-read
    from the environment."""
    import math
    from dataclasses import replace

    from router._config import Config as ConfigType
    from router._eval._data import Item
    from router._eval._fit import export_policy

    for group in (weak, strong):
        if not config.is_routable(group):
            raise ValueError(
                f"--train: the config has no group {group!r} (--weak-group/--strong-group)"
            )
    keyed = []
    for it in train.items:
        if weak in it.correct and strong in it.correct:
            answers = {
                k2: it.answers[k1]
                for k1, k2 in ((weak, "weak"), (strong, "strong"))
                if k1 in it.answers
            }
            keyed.append(
                Item(
                    it.id,
                    it.prompt,
                    it.metadata,
                    it.reference,
                    answers,
                    {"weak": it.correct[weak], "strong": it.correct[strong]},
                )
            )
    data = Dataset(train.name, tuple(keyed), ("weak", "strong"), train.source)
    policies = ["classifier-first"]
    if keyed and all("weak" in it.answers for it in keyed):
        policies.append("cascade")
    base = config.model_dump(mode="json", exclude_none=True)
    specs = []
    for policy in policies:
        done = export_policy(
            data, policy, out, target=target, confidence=confidence, new_items=new_items, seed=seed
        )
        raw = dict(base)
        name = done.name
        path = str(done.artifact.resolve())
        raw["classifiers"] = {**raw.get("classifiers", {}), name: {"kind": "learned", "path": path}}
        if policy == "classifier-first":
            route = {"name": name, "classifier": name, "classes": {"strong": strong, "weak": weak}}
            routes = list(raw.get("routes") or [])
            if not routes:
                routes = [{"name": "default", "group": weak}]
            raw["routes"] = [route, *routes]
            model = config.router.auto_model
        else:
            raw["classifiers"][name]["group"] = weak
            groups = dict(raw.get("groups") or {})
            table = dict(groups.get(weak) or {})
            table["escalate_to"] = strong
            table["escalate_on"] = [*(table.get("escalate_on") or []), f"learned:{name}"]
            table.setdefault("on_exhausted", "review")
            groups[weak] = table
            raw["groups"] = groups
            model = weak
        merged = ConfigType.from_dict(raw, source=f"{config.source} + {done.snippet}")
        figures = done.fitted
        low, high = figures["expected_interval_95"]
        setting = done.spec.setting if done.spec is not None else ""
        spec = PolicySpec(
            f"{policy} (fitted on {train.name})",
            policy,
            setting,
            model,
            merged,
            note=f"expected on new data {figures['expected_quality']:.1%}"
            + ("" if low is None or math.isnan(low) else f" ({low:.1%}-{high:.1%})"),
        )
        specs.append(replace(spec))
    return specs
