"""The pair's accuracy difference on test: which images each model alone gets right, and the exact
McNemar p-value of that split."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seekdeploy.report.pair import disagreement


def _logits(answers: list[int], classes: int = 3) -> np.ndarray:
    """One-hot logits whose argmax is each answer."""
    return np.eye(classes, dtype=np.float32)[answers]


def test_counts_the_images_one_model_alone_gets_right() -> None:
    labels = np.array([0, 1, 2, 0, 1, 2, 0])
    base = _logits([0, 1, 0, 1, 1, 2, 1])  # right: 0, 1, 4, 5
    motivated = _logits([0, 2, 2, 0, 0, 2, 1])  # right: 0, 2, 3, 5
    split = disagreement(base, motivated, labels)
    assert split == {"n_images": 7, "base_only_right": 2, "motivated_only_right": 2, "p_value": 1.0}


@pytest.mark.parametrize(("b", "c", "significant"), [(0, 10, True), (2, 1, False), (3, 17, True),
                                                     (40, 60, False)])
def test_p_value_is_the_exact_two_sided_binomial_tail(b: int, c: int, significant: bool) -> None:
    labels = np.zeros(b + c + 5, dtype=np.int64)
    base_answers, motivated_answers = labels.copy(), labels.copy()
    motivated_answers[:b] = 1  # b images only the base gets right
    base_answers[b:b + c] = 1  # c images only the motivated model gets right
    split = disagreement(_logits(list(base_answers)), _logits(list(motivated_answers)), labels)
    assert (split["base_only_right"], split["motivated_only_right"]) == (b, c)
    n = b + c
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2 ** n
    assert split["p_value"] == pytest.approx(min(1.0, 2 * tail))
    assert (split["p_value"] < 0.05) == significant


def test_identical_answers_have_no_disagreement() -> None:
    labels = np.array([0, 1, 2])
    logits = _logits([0, 0, 2])
    assert disagreement(logits, logits, labels) == {"n_images": 3, "base_only_right": 0,
                                                    "motivated_only_right": 0, "p_value": 1.0}
