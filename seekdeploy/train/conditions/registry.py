"""The condition registry: `register_condition`, `list_conditions`, `describe_condition`, and
`parse_condition` / `create_condition`, which build a condition from text such as
`streak:k=3,hold=1`. The package `__init__` registers every built-in condition.
"""

from __future__ import annotations

import math
from typing import Any

from seekdeploy.errors import ConfigError, did_you_mean
from seekdeploy.train.conditions.base import ConditionEntry, MotivationCondition

_REGISTRY: dict[str, ConditionEntry] = {}


def register_condition(name: str, entry: ConditionEntry) -> None:
    """Add (or replace) a condition under `name` so `create_condition` can build it."""
    _REGISTRY[name] = entry


def list_conditions() -> list[str]:
    """Names of the registered conditions."""
    return sorted(_REGISTRY)


def condition_synopsis() -> str:
    """`name:param=,... | ...` of every registered condition: the forms `--condition` takes."""
    return " | ".join(name + (":" + ",".join(f"{key}=" for key in entry.params) if entry.params else "")
                      for name, entry in sorted(_REGISTRY.items()))


def describe_condition(name: str) -> str:
    """`name:param=default,...  help` for CLI help and error messages."""
    entry = _REGISTRY[name]
    params = ",".join(f"{key}={default}" for key, (_, default) in entry.params.items())
    return f"{name}{':' + params if params else ''}  {entry.help}"


def _convert(name: str, key: str, kind: type, raw: str) -> Any:
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"condition {name!r}: {key}={raw!r} is not a valid "
                          f"{kind.__name__}") from None
    if kind in (int, float) and not math.isfinite(value):
        raise ConfigError(f"condition {name!r}: {key} must be a finite number, got {raw!r}")
    return value


def _validate(name: str, values: dict[str, Any]) -> None:
    # Range checks live here (not in the classes) so every error names the option as typed.
    for key in ("k", "hold"):
        if key in values and values[key] < 1:
            raise ConfigError(f"condition {name!r}: {key} must be >= 1, got {values[key]}")
    if "p" in values and not 0.0 <= values["p"] <= 1.0:
        raise ConfigError(f"condition {name!r}: p must be in [0, 1], got {values['p']}")


def parse_condition(text: str) -> tuple[str, dict[str, Any]]:
    """Split `name:key=value,...` into the name and typed parameters, or raise ConfigError."""
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown motivation condition {name!r}{did_you_mean(name, _REGISTRY)}; "
                          f"choose one of: {', '.join(list_conditions())}")
    entry = _REGISTRY[name]
    values: dict[str, Any] = {}
    problems: list[str] = []  # every problem of the text, reported together
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            problems.append(f"expected key=value, got {item!r} (e.g. {describe_condition(name).split()[0]})")
        elif key not in entry.params:
            allowed = ", ".join(entry.params) or "none"
            problems.append(f"no parameter {key!r}{did_you_mean(key, entry.params)}; parameters: {allowed}")
        else:
            try:
                values[key] = _convert(name, key, entry.params[key][0], raw.strip())
                _validate(name, {key: values[key]})
            except ConfigError as exc:
                problems.append(str(exc).removeprefix(f"condition {name!r}: "))
    if problems:
        raise ConfigError(f"condition {name!r}: {'; '.join(problems)}")
    return name, values


def create_condition(text: str, *, seed: int = 0,
                     total_steps: int | None = None) -> MotivationCondition:
    """Build a condition from text such as `streak:k=3,hold=1`; `seed` feeds seeded conditions,
    `total_steps` (the run's length) the ones that schedule over the run."""
    name, values = parse_condition(text)
    entry = _REGISTRY[name]
    params = {key: default for key, (_, default) in entry.params.items()} | values
    if entry.seeded:
        params["seed"] = seed
    if entry.timed:
        params["total_steps"] = total_steps
    return entry.factory(**params)
