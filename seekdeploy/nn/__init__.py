"""Elastic model families: weight-sharing supernets, nested subnet specs and exact static slicing.

Importing this package imports torch; CLI command modules import it inside their functions.
"""

from seekdeploy.nn.base import Cost, FamilyConfig, SubnetSpec, Supernet
from seekdeploy.nn.registry import (
    build_static,
    config_from_json,
    create_supernet,
    default_pair,
    estimate_cost,
    get_family,
    list_families,
    parse_spec,
    register_family,
    reorganize_channels,
    spec_from_json,
    to_static,
)

__all__ = [
    "Cost",
    "FamilyConfig",
    "SubnetSpec",
    "Supernet",
    "build_static",
    "config_from_json",
    "create_supernet",
    "default_pair",
    "estimate_cost",
    "get_family",
    "list_families",
    "parse_spec",
    "register_family",
    "reorganize_channels",
    "spec_from_json",
    "to_static",
]
