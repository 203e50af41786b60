"""Turn parsed YAML into the frozen dataclasses of `schema.py`, or say everything that is wrong.

The conversion is driven by the dataclasses' own type hints, so a field added to the schema is
validated without touching this module; value rules that types cannot express (positive budgets,
percentiles in (0, 100], ...) live in `_RULES`, rules across fields in `_cross_field_problems`.
A problem does not stop the conversion: it is recorded (dotted key path, bad value, what is
allowed), the bad value becomes `INVALID`, and the walk goes on through the rest of the file in
file order. `validate_profile` then raises one `ProfileError` listing every problem, or returns a
profile in which no `INVALID` is left.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import reprlib
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from seekdeploy.errors import ProfileError, did_you_mean
from seekdeploy.profiles import schema

# Fields the loader fills in itself; a YAML file may not set them.
_LOADER_FIELDS = {"source_path"}

_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
CPU_ARCHES = ("x86_64", "aarch64", "armv7l", "riscv64")

_short_repr = reprlib.Repr()
_short_repr.maxstring = 60
_short_repr.maxother = 60
_short_repr.maxlevel = 2


def show_value(value: Any) -> str:
    """A bounded repr of a user value for error messages (YAML anchors can make huge structures)."""
    return _short_repr.repr(value)


# --- value rules: return None when fine, else what is allowed ------------------------------------


def _positive(value: float) -> str | None:
    return None if value > 0 else "a number greater than 0"


def _non_negative(value: float) -> str | None:
    return None if value >= 0 else "a number >= 0"


def _non_negative_int(value: int) -> str | None:
    return None if value >= 0 else "an integer >= 0"


def _at_least_one(value: int) -> str | None:
    return None if value >= 1 else "an integer >= 1"


def _percentile(value: float) -> str | None:
    return None if 0 < value <= 100 else "a percentile in (0, 100], e.g. 95 or 99"


def _fraction(value: float) -> str | None:
    return None if 0 <= value <= 1 else "a top-1 accuracy fraction in [0, 1], e.g. 0.9"


def _plain_name(value: str) -> str | None:
    ok = _PLAIN_NAME.match(value) is not None
    return None if ok else "a plain name of letters, digits, '.', '-' and '_' (e.g. 'my-board')"


def _cpu_arch(value: str) -> str | None:
    return None if value in CPU_ARCHES else f"one of {', '.join(CPU_ARCHES)}"


def _provider(value: str) -> str | None:
    ok = value.endswith("ExecutionProvider") and len(value) > len("ExecutionProvider")
    return None if ok else "an ONNX Runtime provider name such as 'CPUExecutionProvider'"


_RULES: dict[tuple[type, str], Callable[[Any], str | None]] = {
    (schema.HardwareProfile, "name"): _plain_name,
    (schema.DeviceSpec, "cpu_arch"): _cpu_arch,
    (schema.DeviceSpec, "cpu_cores"): _at_least_one,
    (schema.DeviceSpec, "memory_mib"): _at_least_one,
    (schema.RuntimeSpec, "threads"): _non_negative_int,
    (schema.RuntimeSpec, "workspace_mib"): _at_least_one,
    (schema.RuntimeSpec, "int8_max_accuracy_drop_pp"): _non_negative,
    (schema.InputSpec, "channels"): _at_least_one,
    (schema.InputSpec, "height"): _at_least_one,
    (schema.InputSpec, "width"): _at_least_one,
    (schema.InputSpec, "batch"): _at_least_one,
    (schema.HardwareFigures, "memory_bandwidth_gbs"): _positive,
    (schema.Budget, "latency_ms"): _positive,
    (schema.Budget, "latency_percentile"): _percentile,
    (schema.Budget, "peak_memory_mib"): _positive,
    (schema.Budget, "file_size_mib"): _positive,
    (schema.Budget, "min_accuracy"): _fraction,
    (schema.MeasurementProtocol, "warmup_ms"): _non_negative,
    (schema.MeasurementProtocol, "warmup_iterations"): _non_negative_int,
    (schema.MeasurementProtocol, "duration_ms"): _positive,
    (schema.MeasurementProtocol, "min_iterations"): _at_least_one,
}

# Rules for every item of a list field or every value of a mapping field.
_ITEM_RULES: dict[tuple[type, str], Callable[[Any], str | None]] = {
    (schema.HardwareProfile, "aliases"): _plain_name,
    (schema.RuntimeSpec, "execution_providers"): _provider,
    (schema.InputSpec, "batch_sweep"): _at_least_one,
    (schema.HardwareFigures, "peak_gflops"): _positive,
}


# --- conversion ----------------------------------------------------------------------------------

# A message lists at most this many problems (a 1 MiB file can hold 100,000 bad list items);
# `ProfileError.problems` keeps them all.
MAX_LISTED_PROBLEMS = 50


class _Invalid:
    """Stands in for a value that failed conversion, so the walk can go on; never returned."""

    def __repr__(self) -> str:
        return "<invalid>"


INVALID: Any = _Invalid()


def validate_profile(data: Any, source: str) -> schema.HardwareProfile:
    """Convert parsed YAML `data` into a `HardwareProfile`, or raise one `ProfileError` naming
    `source` that lists every problem of the file (`.problems`, one line each, in file order)."""
    converter = Converter()
    profile = converter.to_dataclass(schema.HardwareProfile, data, "")
    if profile is not INVALID:
        converter.check_profile(profile)
    if converter.problems:
        raise profile_error(source, converter.problems)
    return profile


def profile_error(source: str, problems: list[str]) -> ProfileError:
    """One `ProfileError` for all `problems` of file `source`: a single problem keeps the one-line
    form `invalid profile F: key 'k' ...`; several get a count line and one indented line each."""
    if len(problems) == 1:
        return ProfileError(f"invalid profile {source}: {problems[0]}", problems)
    lines = [f"invalid profile {source}: {len(problems)} problems"]
    lines += [f"  {problem}" for problem in problems[:MAX_LISTED_PROBLEMS]]
    if len(problems) > MAX_LISTED_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_LISTED_PROBLEMS} more")
    return ProfileError("\n".join(lines), problems)


class Converter:
    """Converts one file's data, recording every problem in `problems` (in file order) instead of
    stopping at the first; a value that failed is returned as `INVALID`."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        # Unknown keys per mapping (by key path): a missing key they look like is a misspelling,
        # reported once as the unknown key, not twice.
        self._unknown_keys: dict[str, list[str]] = {}

    def fail(self, key_path: str, problem: str) -> Any:
        """Record `problem` at `key_path` (dotted; '' for the whole file) and return `INVALID`."""
        self.problems.append(f"key '{key_path}' {problem}" if key_path else problem)
        return INVALID

    def to_dataclass(self, cls: type, data: Any, key_path: str) -> Any:
        """Build dataclass `cls` from mapping `data`, checking keys, types and value rules.

        Keys are visited in the file's order, missing required keys reported after them. Unless
        `data` is not a mapping at all, the result is a `cls` whose bad fields are `INVALID`."""
        if not isinstance(data, Mapping):
            what = f"a mapping of {', '.join(self._allowed(cls))}"
            return self.fail(key_path, f"must be {what}, got {show_value(data)}")
        allowed = self._allowed(cls)
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for key, raw in data.items():
            if not isinstance(key, str) or key not in allowed:
                self._unknown_key(key, allowed, key_path)
                continue
            child = f"{key_path}.{key}" if key_path else key
            value = self.convert(hints[key], raw, child)
            self._check_rule(cls, key, value, child)
            kwargs[key] = value
        for spec in dataclasses.fields(cls):
            if spec.name in kwargs or not _is_required(spec) or spec.name in _LOADER_FIELDS:
                continue
            child = f"{key_path}.{spec.name}" if key_path else spec.name
            if not self.misspelt(key_path, spec.name):
                self.fail(child, f"is missing; add it ({self._describe(hints[spec.name])})")
            kwargs[spec.name] = INVALID
        return cls(**kwargs)

    def convert(self, hint: Any, value: Any, key_path: str) -> Any:
        """Convert one value to the type `hint`; a problem is recorded at `key_path` and gives
        `INVALID` (containers keep their good items, with `INVALID` for the bad ones)."""
        origin = typing.get_origin(hint)
        if origin in (typing.Union, types.UnionType):
            options = [arg for arg in typing.get_args(hint) if arg is not type(None)]
            if value is None:
                return None
            return self.convert(options[0], value, key_path)
        if dataclasses.is_dataclass(hint):
            return self.to_dataclass(hint, value, key_path)
        if origin is tuple:
            return self._to_tuple(typing.get_args(hint)[0], value, key_path)
        if origin is dict:
            key_hint, value_hint = typing.get_args(hint)
            return self._to_dict(key_hint, value_hint, value, key_path)
        if isinstance(hint, type) and issubclass(hint, enum.Enum):
            return self._to_enum(hint, value, key_path)
        return self._to_scalar(hint, value, key_path)

    def misspelt(self, key_path: str, name: str) -> bool:
        """Whether the mapping at `key_path` has an unknown key that looks like `name`."""
        return any(did_you_mean(key, [name]) for key in self._unknown_keys.get(key_path, ()))

    def check_profile(self, profile: schema.HardwareProfile) -> None:
        """Record the problems of rules across fields, for the fields that converted."""
        for key_path, problem in _cross_field_problems(profile, self.misspelt):
            self.fail(key_path, problem)

    def _to_scalar(self, hint: type, value: Any, key_path: str) -> Any:
        if hint is str and isinstance(value, str):
            return value
        if hint is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            number = _finite_float(value)
            if number is not None:
                return number
        hint_text = ""
        if hint is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            hint_text = f"; quote it in the YAML file (\"{value}\")"
        expected = self._describe(hint)
        return self.fail(key_path, f"must be {expected}, got {show_value(value)}{hint_text}")

    def _to_enum(self, enum_cls: type[enum.Enum], value: Any, key_path: str) -> Any:
        choices = [member.value for member in enum_cls]
        if isinstance(value, str) and value in choices:
            return enum_cls(value)
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return self.fail(
            key_path, f"is {show_value(value)}{hint}; allowed values: {', '.join(choices)}"
        )

    def _to_tuple(self, item_hint: Any, value: Any, key_path: str) -> Any:
        if not isinstance(value, list):
            return self.fail(
                key_path,
                f"must be a list of {self._describe(item_hint)}, got {show_value(value)} "
                "(write [a, b] or one '- item' per line)",
            )
        items = enumerate(value)
        return tuple(self.convert(item_hint, item, f"{key_path}[{i}]") for i, item in items)

    def _to_dict(self, key_hint: Any, value_hint: Any, value: Any, key_path: str) -> Any:
        if not isinstance(value, Mapping) or not value:
            keys = ", ".join(m.value for m in key_hint) if _is_enum(key_hint) else "names"
            problem = f"must be a non-empty mapping with keys from {keys}"
            return self.fail(key_path, f"{problem}, got {show_value(value)}")
        allowed = [member.value for member in key_hint] if _is_enum(key_hint) else None
        result: dict[Any, Any] = {}
        for key, item in value.items():
            if allowed is not None and (not isinstance(key, str) or key not in allowed):
                self._unknown_key(key, allowed, key_path)
                continue
            result[key_hint(key)] = self.convert(value_hint, item, f"{key_path}.{key}")
        return result

    def _check_rule(self, cls: type, name: str, value: Any, key_path: str) -> None:
        rule = _RULES.get((cls, name))
        if rule is not None and value is not None and value is not INVALID:
            problem = rule(value)
            if problem:
                self.fail(key_path, f"must be {problem}, got {show_value(value)}")
        item_rule = _ITEM_RULES.get((cls, name))
        if item_rule is None or not value or value is INVALID:
            return
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            problem = None if item is INVALID else item_rule(item)
            if problem:
                index = f"[{key}]" if isinstance(key, int) else f".{_plain(key)}"
                self.fail(key_path + index, f"must be {problem}, got {show_value(item)}")

    def _unknown_key(self, key: Any, allowed: list[str], key_path: str) -> None:
        child = f"{key_path}.{key}" if key_path else str(key)
        hint = ""
        if isinstance(key, str):
            hint = did_you_mean(key, allowed)
            self._unknown_keys.setdefault(key_path, []).append(key)
        where = f"in '{key_path}'" if key_path else "at the top level"
        self.fail(child, f"is not a known key{hint}; allowed keys {where}: {', '.join(allowed)}")

    @staticmethod
    def _allowed(cls: type) -> list[str]:
        return [f.name for f in dataclasses.fields(cls) if f.name not in _LOADER_FIELDS]

    @staticmethod
    def _describe(hint: Any) -> str:
        names = {str: "a string", int: "an integer", float: "a number"}
        if hint in names:
            return names[hint]
        if _is_enum(hint):
            return "one of " + ", ".join(member.value for member in hint)
        if dataclasses.is_dataclass(hint):
            keys = [f.name for f in dataclasses.fields(hint) if _is_required(f)]
            return f"a mapping with keys {', '.join(keys)}" if keys else "a mapping"
        return "a value"


def _cross_field_problems(
    profile: schema.HardwareProfile, misspelt: Callable[[str, str], bool]
) -> list[tuple[str, str]]:
    # Rules the per-field validation cannot see. A rule whose fields failed is not judged, and a
    # key the file misspells (misspelt(key_path, name)) was reported already as an unknown key.
    problems = []
    if profile.budgets is not INVALID:
        missing = [role.value for role in schema.Role
                   if role not in profile.budgets and not misspelt("budgets", role.value)]
        if missing:
            problems.append(("budgets", f"has no budget for {', '.join(missing)}; every profile "
                             "declares both 'base' and 'motivated' budgets"))
    if profile.runtime is INVALID or profile.hardware is INVALID:
        return problems
    precision, peaks = profile.runtime.precision, profile.hardware.peak_gflops
    if precision is INVALID or peaks is INVALID or precision in peaks:
        return problems
    if not misspelt("hardware.peak_gflops", precision.value):
        declared = ", ".join(p.value for p in peaks) or "none"
        problems.append(("hardware.peak_gflops", (
            f"has no figure for the runtime precision {precision.value!r} (declared: {declared}); "
            f"add '{precision.value}: <GFLOP/s>'")))
    return problems


def _is_enum(hint: Any) -> bool:
    return isinstance(hint, type) and issubclass(hint, enum.Enum)


def _is_required(spec: dataclasses.Field[Any]) -> bool:
    no_default = spec.default is dataclasses.MISSING
    return no_default and spec.default_factory is dataclasses.MISSING


def _plain(key: Any) -> str:
    return key.value if isinstance(key, enum.Enum) else str(key)


def _finite_float(value: int | float) -> float | None:
    # Huge YAML integers overflow float(); NaN/inf are never meaningful figures or budgets.
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None
