"""The two models of a pair — the role — and the rule for the BatchNorm statistics each runs with.

Inside seekdeploy a role is always a `Role`; its string ("base", "motivated") appears only where
text crosses the package's edge: a CLI option, a JSON/YAML key or value, a folder name. `Role` is a
`str` enum whose `str()` and `format()` are the value, so a role written into JSON, a path or an
f-string reads as the plain word, and `parse_role` turns the word back into the enum.

BatchNorm statistics: under `--bn private` a supernet keeps one set of running statistics per
role, named after it; under `--bn shared` it keeps one set, `SHARED_STATISTICS`, that both roles
use (`statistics_sets`, `statistics_of`).

Standard library only: every layer imports it without cost.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import TypeVar

from seekdeploy.errors import ConfigError, did_you_mean

T = TypeVar("T")


class Role(str, enum.Enum):
    """The two models of a pair: the small `BASE`, and the `MOTIVATED` model that contains it."""

    BASE = "base"
    MOTIVATED = "motivated"

    def __str__(self) -> str:
        return self.value

    def __format__(self, format_spec: str) -> str:
        return format(self.value, format_spec)

    @property
    def display_name(self) -> str:
        """How reports and summaries name the role ("base model", "motivated model")."""
        return f"{self.value} model"

    def pick(self, base: T, motivated: T) -> T:
        """`base` for the base role, `motivated` for the motivated one (e.g. its default spec out
        of a family's `default_pair()`)."""
        return base if self is Role.BASE else motivated


# Base first: the order of every per-role listing (export folders, tables, plots).
ROLES: tuple[Role, ...] = tuple(Role)
# The role names, for CLI choices and JSON schemas (the only place they are spelled is `Role`).
ROLE_NAMES: tuple[str, ...] = tuple(role.value for role in Role)

# The one set of BatchNorm statistics both roles use under `--bn shared`.
SHARED_STATISTICS = "shared"


def parse_role(text: str | Role) -> Role:
    """The `Role` named by `text` (a CLI or JSON value), or a ConfigError naming the choices."""
    if isinstance(text, Role):
        return text
    try:
        return Role(str(text).strip().lower())
    except ValueError:
        raise ConfigError(f"unknown role {text!r}{did_you_mean(str(text), ROLE_NAMES)}; "
                          f"choose {' or '.join(ROLE_NAMES)}") from None


def statistics_sets(shared: bool) -> tuple[str, ...]:
    """The BatchNorm statistics a supernet keeps: one set per role, or the one shared set."""
    return (SHARED_STATISTICS,) if shared else ROLE_NAMES


def statistics_of(role: Role, kept: Sequence[str]) -> str:
    """The BatchNorm statistics `role` runs with, among the sets a supernet keeps (`kept`): its own
    where it has them, else the one shared set."""
    return role.value if role.value in kept else kept[0]
