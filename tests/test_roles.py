"""The role: a str enum that reads as its value at the edges, parsed back with a clear error, and
the rule for the BatchNorm statistics each role runs with."""

from __future__ import annotations

import json

import pytest

from seekdeploy.errors import ConfigError
from seekdeploy.roles import (ROLE_NAMES, ROLES, SHARED_STATISTICS, Role, parse_role, statistics_of,
                              statistics_sets)


def test_a_role_reads_as_its_value_in_text_json_and_lookups() -> None:
    assert ROLES == (Role.BASE, Role.MOTIVATED) and ROLE_NAMES == ("base", "motivated")
    assert f"{Role.BASE}" == str(Role.BASE) == "base" and f"{Role.MOTIVATED:>10}" == " motivated"
    assert json.dumps({Role.BASE: Role.MOTIVATED}) == '{"base": "motivated"}'
    assert {"motivated": 1}[Role.MOTIVATED] == 1 and Role.BASE.pick(1, 2) == 1 and Role.MOTIVATED.pick(1, 2) == 2


def test_parse_role_takes_the_word_and_names_the_choices() -> None:
    assert parse_role(" Motivated ") is Role.MOTIVATED and parse_role(Role.BASE) is Role.BASE
    with pytest.raises(ConfigError, match="did you mean 'base'.*choose base or motivated"):
        parse_role("bas")


def test_each_role_runs_with_its_own_statistics_or_the_shared_set() -> None:
    assert statistics_sets(shared=False) == ROLE_NAMES
    assert statistics_sets(shared=True) == (SHARED_STATISTICS,)
    assert [statistics_of(role, statistics_sets(False)) for role in ROLES] == ["base", "motivated"]
    assert [statistics_of(role, statistics_sets(True)) for role in ROLES] == [SHARED_STATISTICS] * 2
