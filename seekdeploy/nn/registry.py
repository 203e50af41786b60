"""The family registry and the public model API (`create_supernet`, `to_static`, `parse_spec`, …).

Every public module of `seekdeploy.nn.families` is one family, named as the module, and defines a
module-level `FAMILY` (`seekdeploy.nn.family.Family`): adding a family is adding a module there.
A family's module is imported only when that family is first used. `register_family` adds one at
run time. Importing this module imports
no torch: `list_families()` serves the CLI's `--arch` choices while `seekdeploy --help` stays light.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import seekdeploy.nn.families
from seekdeploy.errors import SpecError, did_you_mean
from seekdeploy.nn.family import Family
from seekdeploy.nn.layers import Cost, Layer
from seekdeploy.nn.spec import FamilyConfig, SubnetSpec

if TYPE_CHECKING:
    from seekdeploy.nn.base import Supernet
    from seekdeploy.nn.grid import SpecGrid

DEFAULT_FAMILY = "resnet"  # listed first; the CLI's default --arch
_FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> None:
    """Add (or replace) a family in the registry."""
    _FAMILIES[family.name] = family


@functools.lru_cache(maxsize=1)
def _family_modules() -> dict[str, str]:
    # Family name -> module: the public modules of seekdeploy/nn/families, found without importing
    # them (a family module imports torch; one family's import error never affects the others).
    folder = seekdeploy.nn.families.__path__
    names = sorted(info.name for info in pkgutil.iter_modules(folder) if not info.name.startswith("_"))
    names.sort(key=lambda name: name != DEFAULT_FAMILY)
    return {name: f"{seekdeploy.nn.families.__name__}.{name}" for name in names}


def _load(name: str) -> Family | None:
    if name not in _FAMILIES and name in _family_modules():
        module_name = _family_modules()[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a real missing dependency inside the family: a bug
                raise
            return None
        family = getattr(module, "FAMILY", None)
        if isinstance(family, Family):
            register_family(family)
    return _FAMILIES.get(name)


def list_families() -> list[str]:
    """Names of the available model families (registered or importable)."""
    return list(dict.fromkeys([*_family_modules(), *_FAMILIES]))


def families_with(capability: str) -> list[str]:
    """Names of the available families whose `Family.<capability>` flag is true (e.g.
    `private_convs`, `clones_channels`), in `list_families` order."""
    return [name for name in list_families() if getattr(get_family(name), capability)]


def get_family(name: str) -> Family:
    """The registered family `name`, or a SpecError with a suggestion."""
    key = str(name).strip().lower()
    family = _load(key)
    if family is None:
        names = list_families()
        raise SpecError(f"unknown model family {name!r}{did_you_mean(key, names)}; "
                        f"available: {', '.join(names)}")
    return family


def spec_from_json(data: Mapping[str, Any]) -> SubnetSpec:
    """Rebuild a spec from `SubnetSpec.to_json()` output (a dict with a `family` key)."""
    if not isinstance(data, Mapping) or "family" not in data:
        raise SpecError(f"a spec must be a JSON object with a 'family' key, got {data!r}")
    return get_family(data["family"]).spec_type.from_fields(data)


def config_from_json(data: Mapping[str, Any]) -> FamilyConfig:
    """Rebuild a family config from `FamilyConfig.to_json()` output."""
    if not isinstance(data, Mapping) or "family" not in data:
        raise SpecError(f"a family config must be a JSON object with a 'family' key, got {data!r}")
    return get_family(data["family"]).config_type.from_fields(data)


def parse_spec(family: str | None, text: str | Mapping[str, Any] | SubnetSpec) -> SubnetSpec:
    """Parse a spec from CLI text (`resnet:depth=3,3,3;width=16,32,64`, the `family:` prefix
    optional when `family` is given), a JSON object string, a dict, or a spec (returned as is).

    A spec of another family than `family` (when given) is a SpecError.
    """
    if isinstance(text, SubnetSpec):
        spec = text
    elif isinstance(text, Mapping):
        spec = spec_from_json({"family": family, **text} if family and "family" not in text else text)
    else:
        spec = _parse_text(family, str(text).strip())
    if family is not None and spec.family != get_family(family).name:
        raise SpecError(f"expected a {family!r} spec, got {spec.family!r} ({spec})")
    return spec


def _parse_text(family: str | None, text: str) -> SubnetSpec:
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError(f"spec JSON is malformed ({exc.msg} at character {exc.pos}): {text!r}") from None
        return parse_spec(family, data)
    head, sep, body = text.partition(":")
    if not sep or "=" in head:
        head, body = (family or ""), text
    if not head:
        raise SpecError(f"spec {text!r} names no family; write it as 'FAMILY:key=v,v;key=v', "
                        f"FAMILY one of {', '.join(list_families())}")
    fields: dict[str, str] = {"family": head}
    for part in filter(None, (p.strip() for p in body.split(";"))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise SpecError(f"spec part {part!r} in {text!r} is not 'key=value' "
                            "(write e.g. 'resnet:depth=3,3,3;width=16,32,64')")
        if key.strip() in fields:
            raise SpecError(f"spec {text!r} sets {key.strip()!r} twice")
        fields[key.strip()] = value.strip()
    return spec_from_json(fields)


def default_pair(family: str) -> tuple[FamilyConfig, SubnetSpec, SubnetSpec]:
    """The family's default supernet config, base spec and motivated spec (base ⊂ motivated)."""
    return get_family(family).default_pair()


def create_supernet(family: str, config: FamilyConfig | Mapping[str, Any] | None = None, *,
                    num_classes: int, in_channels: int, image_size: int,
                    bn_roles: tuple[str, ...] | None = None,
                    private_roles: tuple[str, ...] = (), private_head: bool = False,
                    private_convs: bool = False) -> Supernet:
    """Build a family's supernet (config None = the family default; a dict = `to_json()` form;
    bn_roles None = the supernet's default, private statistics for base and motivated;
    private_roles: roles given their own BN scale/shift and classifier bias; private_head:
    those roles own an offset to the classifier's weight as well; private_convs: and to every
    convolution's weight)."""
    entry = get_family(family)
    if config is None:
        config = entry.default_pair()[0]
    elif isinstance(config, Mapping):
        config = entry.config_type.from_fields(config)
    if not isinstance(config, entry.config_type):
        raise SpecError(f"config {config!r} is not a {entry.config_type.__name__} for family {entry.name!r}")
    for name, value in (("num_classes", num_classes), ("in_channels", in_channels), ("image_size", image_size)):
        if not isinstance(value, int) or value < 1:
            raise SpecError(f"{name} must be a positive integer, got {value!r}")
    roles = {} if bn_roles is None else {"bn_roles": tuple(bn_roles)}
    supernet = entry.build_supernet(config, num_classes=num_classes, in_channels=in_channels,
                                    image_size=image_size, **roles)
    supernet.make_role_private(tuple(private_roles), head=private_head, convs=private_convs)
    return supernet


def build_static(spec: SubnetSpec, *, num_classes: int, in_channels: int, image_size: int) -> Any:
    """A freshly initialized static network of `spec` (stock layers only)."""
    return get_family(spec.family).build_static(spec, num_classes=num_classes,
                                                in_channels=in_channels, image_size=image_size)


def to_static(supernet: Supernet, spec: SubnetSpec | None, bn_role: str | None = None) -> Any:
    """An ordinary `nn.Module` of stock layers holding clones of `spec`'s weight slices and
    `bn_role`'s BN statistics, in eval mode, on the supernet's device.

    Its outputs equal `supernet(x, spec, bn_role)` in eval mode; it shares no storage with the
    supernet and has no unused parameter.
    """
    import torch

    spec, role = supernet.check_spec(spec), supernet.check_role(bn_role)
    static = build_static(spec, num_classes=supernet.num_classes, in_channels=supernet.in_channels,
                          image_size=supernet.image_size)
    source = dict(supernet.named_parameters())
    source.update(supernet.named_buffers())
    state = {}
    with torch.no_grad():
        for name, target in static.state_dict().items():
            prefix = tuple(slice(0, n) for n in target.shape)
            parts = [source[part][prefix] for part in supernet.static_sources(name, role)]
            state[name] = sum(parts[1:], parts[0]).detach().clone()
    static.load_state_dict(state, strict=True)
    device = next(supernet.parameters()).device
    return static.to(device).eval()


def list_layers(spec: SubnetSpec, *, in_channels: int, image_size: int, num_classes: int) -> list[Layer]:
    """The layers of `spec`'s static network at batch 1, in forward order (what the planner's
    latency predictors sum over; see `seekdeploy.nn.layers`)."""
    return get_family(spec.family).describe_layers(spec, in_channels=in_channels, image_size=image_size,
                                                   num_classes=num_classes)


def estimate_cost(spec: SubnetSpec, *, in_channels: int, image_size: int, num_classes: int) -> Cost:
    """Analytic params, MACs, FLOPs and activation memory of `spec`'s static network at batch 1,
    derived from the family's layer description."""
    return get_family(spec.family).estimate_cost(spec, in_channels=in_channels, image_size=image_size,
                                                 num_classes=num_classes)


def search_grid(family: str) -> SpecGrid:
    """The planner's grid of `family` (a `seekdeploy.nn.grid.SpecGrid` around its default supernet)."""
    entry = get_family(family)
    if entry.search_grid is None:
        raise SpecError(f"family {entry.name!r} declares no search grid, so the planner cannot search it; "
                        "pass --base and --motivated specs explicitly")
    return entry.search_grid()


def reorganize_channels(supernet: Supernet) -> Supernet:
    """Sort channels by importance (L1 norm of outgoing weights) so prefixes hold the most
    important ones; the whole supernet's function is unchanged. In place; returns the supernet.

    Call it before creating an optimizer (optimizer state is not permuted).
    """
    entry = get_family(supernet.family)
    if entry.reorganize is None:
        raise SpecError(f"family {entry.name!r} does not support channel reorganization")
    if supernet.private_roles:
        raise SpecError("cannot reorganize a supernet with private offsets (they are not permuted "
                        "with their channels); reorganize before make_role_private")
    entry.reorganize(supernet)
    return supernet
