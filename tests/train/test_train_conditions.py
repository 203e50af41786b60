"""Motivation conditions: decisions on hand-made base-loss sequences, parsing, state."""

from __future__ import annotations

import json

import pytest

from seekdeploy.errors import ConfigError
from seekdeploy.roles import Role
from seekdeploy.train.conditions import create_condition, list_conditions, parse_condition


def _roles(condition, losses):
    """Feed base losses; return the role chosen before each step (motivated steps consume none)."""
    roles, feed = [], iter(losses)
    step = 0
    while True:
        role = condition.decide(step).role
        roles.append(role.value[0])  # 'b' / 'm'
        step += 1
        if role is Role.BASE:
            try:
                condition.observe_base_loss(next(feed))
            except StopIteration:
                return "".join(roles[:-1])


def test_streak_triggers_after_k_decreases_then_resets() -> None:
    condition = create_condition("streak:k=3,hold=1")
    # 5 > 4 > 3 > 2 is three decreases -> one motivated batch, then the streak starts from zero.
    # 2 > 1 > 0.5 > 0.4 is the next streak of three.
    assert _roles(condition, [5, 4, 3, 2, 1, 0.5, 0.4]) == "bbbbmbbbm"


def test_streak_rise_breaks_the_streak_and_hold_is_respected() -> None:
    condition = create_condition("streak:k=2,hold=3")
    # 3 > 2 (1), 2 < 4 breaks, 4 > 1 > 0 (2) -> three motivated batches.
    assert _roles(condition, [3, 2, 4, 1, 0, 9]) == "bbbbbmmmb"


def test_random_is_seeded_and_restorable() -> None:
    first = create_condition("random:p=0.5", seed=7)
    decisions = [first.decide(i).role for i in range(50)]
    assert 10 < sum(r is Role.MOTIVATED for r in decisions) < 40
    again = create_condition("random:p=0.5", seed=7)
    assert [again.decide(i).role for i in range(50)] == decisions
    state = first.state_dict()
    upcoming = [first.decide(i).role for i in range(20)]
    restored = create_condition("random:p=0.5", seed=99)
    restored.load_state_dict(state)
    assert [restored.decide(i).role for i in range(20)] == upcoming


def test_matched_reproduces_the_reference_count(tmp_path) -> None:
    roles = ["motivated" if i % 4 == 0 else "base" for i in range(40)]
    reference = tmp_path / "motivation.jsonl"
    reference.write_text("".join(json.dumps({"step": i, "role": r}) + "\n"
                                 for i, r in enumerate(roles)))
    condition = create_condition(f"matched:reference={reference}", seed=3)
    chosen = [condition.decide(i).role for i in range(40)]
    assert sum(r is Role.MOTIVATED for r in chosen) == roles.count("motivated")
    assert all(condition.decide(i).role is Role.BASE for i in range(40, 60))
    positions = [i for i, r in enumerate(chosen) if r is Role.MOTIVATED]
    assert positions != [i for i in range(0, 40, 4)]  # random positions, not the reference's


def test_never_and_always() -> None:
    assert {create_condition("never").decide(i).role for i in range(5)} == {Role.BASE}
    assert {create_condition("always").decide(i).role for i in range(5)} == {Role.MOTIVATED}
    assert {"streak", "random", "matched", "never", "always"} <= set(list_conditions())


@pytest.mark.parametrize("text, message", [
    ("streek:k=3", "did you mean 'streak'"),
    ("streak:kk=3", "no parameter 'kk'"),
    ("streak:k=three", "not a valid int"),
    ("streak:k=0", "k must be >= 1"),
    ("random:p=1.5", "p must be in [0, 1]"),
    ("streak:k", "expected key=value"),
    ("matched:reference=/nonexistent/motivation.jsonl", "does not exist"),
])
def test_bad_condition_text_is_a_clear_config_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=__import__("re").escape(message)):
        create_condition(text)


def test_parse_condition_types() -> None:
    assert parse_condition("streak:k=4, hold=2") == ("streak", {"k": 4, "hold": 2})
    assert parse_condition("random:p=0.3") == ("random", {"p": 0.3})


def test_every_problem_of_a_condition_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_condition("streak:k=0,hodl=2,oops,hold=x")
    message = str(caught.value)
    assert message.startswith("condition 'streak': ")
    parts = ["k must be >= 1", "did you mean 'hold'", "expected key=value, got 'oops'", "hold='x' is not a valid int"]
    positions = [message.find(part) for part in parts]
    assert -1 not in positions and positions == sorted(positions), message
