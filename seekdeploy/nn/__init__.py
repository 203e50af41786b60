"""Elastic model families: weight-sharing supernets, nested subnet specs and exact static slicing.

A family is one object (`seekdeploy.nn.family.Family`) defined in its own module; the registry
lists them. The names below are loaded on first use, so `import seekdeploy.nn` (and the torch-free
`registry`, `family`, `layers`, `spec` and `grid` modules) import no torch; only `Supernet`,
`create_supernet`, `to_static` and `build_static` do, when called.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> module that defines it (relative to this package)
_EXPORTS = {
    "Cost": ".layers", "Layer": ".layers", "LayerKind": ".layers",
    "FamilyConfig": ".spec", "SubnetSpec": ".spec",
    "Family": ".family", "SpecGrid": ".grid",
    "Supernet": ".base",
    **{name: ".registry" for name in (
        "build_static", "config_from_json", "create_supernet", "default_pair", "estimate_cost",
        "get_family", "list_families", "list_layers", "parse_spec", "register_family",
        "reorganize_channels", "search_grid", "spec_from_json", "to_static")},
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'seekdeploy.nn' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value
