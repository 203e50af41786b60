"""Budget verdicts and the results JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seekdeploy.errors import SeekdeployError
from seekdeploy.profiles.schema import Budget
from seekdeploy.runtime.result_schema import build_model_result, build_sweep_entry, validate_model_result
from seekdeploy.runtime.results import build_profile_document, load_profile_document, write_profile_document
from seekdeploy.runtime.timing import LatencyStats
from seekdeploy.runtime.verdict import CheckName, Outcome, evaluate_role
from seekdeploy.runtime.windows import latency_at


def make_result(samples_ms: list[float], peak_memory_mib: float | None = 100.0, size_mib: float | None = 2.0) -> dict:
    stats = LatencyStats.from_samples(samples_ms)
    return build_model_result(
        role="base", model_file="model.onnx", runtime="onnxruntime", providers=["CPUExecutionProvider"],
        threads=0, input_shape=[1, 3, 8, 8], protocol={"warmup_ms": 0.0}, latency=stats.to_json(),
        environment={"hostname": "test"}, peak_memory_mib=peak_memory_mib, file_size_mib=size_mib,
    )  # fmt: skip


SAMPLES = [float(ms) for ms in range(1, 101)]  # p95 = 95.05 ms


def outcomes(verdict) -> dict[CheckName, Outcome]:
    return {check.name: check.outcome for check in verdict.checks}


def test_all_within_budget_passes_with_margins() -> None:
    budget = Budget(latency_ms=100.0, peak_memory_mib=200.0, file_size_mib=4.0, min_accuracy=0.8)
    verdict = evaluate_role("base", make_result(SAMPLES), budget, accuracy=0.9)
    assert verdict.passed
    assert set(outcomes(verdict).values()) == {Outcome.PASS}
    latency = verdict.checks[0]
    assert latency.measured == pytest.approx(95.05)
    assert latency.margin == pytest.approx(4.95)
    assert latency.margin_pct == pytest.approx(4.95)
    line = verdict.summary_line()
    assert line.startswith("PASS base")
    assert "p95 95.05 ms ≤ 100 ms (margin 4.95 ms, 5%)" in line
    assert "mem 100 MiB ≤ 200 MiB (margin 100 MiB, 50%)" in line
    assert "top-1 90.0% ≥ 80.0% (margin 10.0 pts" in line


@pytest.mark.parametrize(
    ("budget", "accuracy", "failing"),
    [
        (Budget(latency_ms=90.0), None, CheckName.LATENCY),
        (Budget(latency_ms=200.0, peak_memory_mib=50.0), None, CheckName.MEMORY),
        (Budget(latency_ms=200.0, file_size_mib=1.0), None, CheckName.SIZE),
        (Budget(latency_ms=200.0, min_accuracy=0.95), 0.9, CheckName.ACCURACY),
    ],
)
def test_each_budget_can_fail_alone(budget: Budget, accuracy: float | None, failing: CheckName) -> None:
    verdict = evaluate_role("motivated", make_result(SAMPLES), budget, accuracy)
    assert not verdict.passed
    assert [check.name for check in verdict.failures()] == [failing]
    assert verdict.summary_line().startswith("FAIL motivated")
    assert verdict.failures()[0].margin < 0


def test_budget_percentile_is_taken_from_raw_samples() -> None:
    verdict = evaluate_role("base", make_result(SAMPLES), Budget(latency_ms=99.5, latency_percentile=99.5))
    assert verdict.checks[0].label == "p99.5"
    assert verdict.checks[0].measured == pytest.approx(99.505)
    assert not verdict.passed


def test_equal_to_budget_passes_and_unmeasured_is_skipped() -> None:
    result = make_result([5.0] * 10, peak_memory_mib=None)
    verdict = evaluate_role("base", result, Budget(latency_ms=5.0, peak_memory_mib=10.0, min_accuracy=0.5))
    assert outcomes(verdict) == {
        CheckName.LATENCY: Outcome.PASS, CheckName.MEMORY: Outcome.SKIP, CheckName.ACCURACY: Outcome.SKIP,
    }  # fmt: skip
    assert verdict.passed
    assert "not measured" in verdict.summary_line()


def test_latency_at_without_samples_uses_summary_keys() -> None:
    latency = LatencyStats.from_samples(SAMPLES).to_json(include_samples=False)
    assert latency_at(latency, 95) == pytest.approx(95.05)
    with pytest.raises(ValueError):
        latency_at(latency, 97)


def test_model_result_schema_and_sweep() -> None:
    result = make_result(SAMPLES)
    assert validate_model_result(result) == []
    assert result["schema_version"] == 1 and result["batch"] == 1
    assert "samples_ms" not in result["repeats"][0]
    entry = build_sweep_entry([8, 3, 8, 8], LatencyStats.from_samples([1.0, 2.0], batch=8).to_json())
    assert entry["batch"] == 8 and "samples_ms" not in entry["latency"]
    broken = dict(result, threads="four")
    del broken["latency"]
    problems = validate_model_result(broken)
    assert "missing key 'latency'" in problems and "'threads' has type str" in problems
    assert validate_model_result(dict(result, schema_version=2))


def test_profile_document_round_trip(tmp_path: Path) -> None:
    result = make_result(SAMPLES)
    verdict = evaluate_role("base", result, Budget(latency_ms=90.0))
    document = build_profile_document(profile_name="x", export="exports/r", results=[result], verdicts=[verdict])
    assert document["passed"] is False
    path = write_profile_document(tmp_path / "profile.json", document)
    loaded = load_profile_document(path)
    assert loaded["verdicts"][0]["checks"][0]["outcome"] == "FAIL"
    assert loaded["results"][0]["latency"]["samples_ms"][:3] == [1.0, 2.0, 3.0]


def test_load_profile_document_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SeekdeployError, match="run `seekdeploy profile` first"):
        load_profile_document(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SeekdeployError, match="not valid JSON"):
        load_profile_document(bad)
    bad.write_text(json.dumps({"kind": "seekdeploy.profile", "schema_version": 99}))
    with pytest.raises(SeekdeployError, match="schema_version 99"):
        load_profile_document(bad)


# ---- the verdict protocol: the quietest window judged, every window checked ----


def windowed_result(window_samples: list[list[float]], busy_cores: list[float] | None = None) -> dict:
    """A model result of several timed windows, merged as `profile` merges them."""
    from seekdeploy.runtime.timing import TimedWindow
    from seekdeploy.runtime.windows import merge_windows

    chunks = []
    for index, samples in enumerate(window_samples):
        stats = LatencyStats.from_samples(samples)
        load = {"others_busy_cores": (busy_cores or [0.0] * len(window_samples))[index]}
        chunks.append(build_model_result(
            role="base", model_file="model.onnx", runtime="onnxruntime", providers=[], threads=0,
            input_shape=[1, 3, 8, 8], protocol={}, latency=stats.to_json(), environment={},
            repeats=[TimedWindow(stats, load).to_json()], peak_memory_mib=10.0, file_size_mib=1.0,
        ))  # fmt: skip
    return merge_windows(chunks, ["base"])


QUIET = [1.0] * 19 + [1.5]  # p95 1.025 ms
BUSY = [1.2] * 15 + [4.0] * 5  # p95 4.0 ms


def test_windows_straddling_the_budget_make_the_verdict_unstable() -> None:
    result = windowed_result([BUSY, QUIET, QUIET, BUSY, QUIET])
    verdict = evaluate_role("base", result, Budget(latency_ms=2.0))
    latency = verdict.checks[0]
    assert latency.measured == pytest.approx(1.025)  # the quietest window (lowest median) is judged
    assert latency.window_values == pytest.approx((4.0, 1.025, 1.025, 4.0, 1.025))
    assert latency.windows_passed == 3 and latency.unstable and latency.outcome is Outcome.PASS
    assert verdict.passed and verdict.unstable and verdict.status == "UNSTABLE"
    line = verdict.summary_line()
    assert line.startswith("UNSTABLE base")
    assert "49%); unstable: PASS in 3 of 5 windows (p95 1.03 ms to 4.00 ms)" in line
    assert "quietest of 5 windows, spread 20%" in line
    data = verdict.to_json()
    assert data["outcome"] == "PASS" and data["unstable"] is True and data["windows"] == 5
    assert data["checks"][0]["windows_passed"] == 3 and len(data["checks"][0]["window_values"]) == 5


def test_windows_that_agree_give_a_clean_verdict() -> None:
    result = windowed_result([QUIET, BUSY, QUIET])
    assert evaluate_role("base", result, Budget(latency_ms=5.0)).status == "PASS"
    failing = evaluate_role("base", result, Budget(latency_ms=0.5))
    assert failing.status == "FAIL" and not failing.unstable
    assert failing.summary_line().startswith("FAIL base")


def test_a_failure_on_a_busy_machine_is_unstable_but_a_pass_stands() -> None:
    # Other processes kept 1.4 cores busy in every window, the quietest included.
    result = windowed_result([BUSY, BUSY, BUSY], busy_cores=[1.4, 1.5, 1.4])
    failing = evaluate_role("base", result, Budget(latency_ms=3.0))
    assert not failing.passed and failing.unstable and failing.status == "UNSTABLE"
    assert "failed while other processes kept 1.40 cores busy" in failing.summary_line()
    passing = evaluate_role("base", result, Budget(latency_ms=5.0))
    assert passing.status == "PASS"  # other work only adds time: a pass measured under load holds
    quiet_fail = evaluate_role("base", windowed_result([BUSY, BUSY], busy_cores=[0.1, 0.0]), Budget(latency_ms=3.0))
    assert quiet_fail.status == "FAIL"
    # Even the fastest iteration (1.2 ms) is over 1 ms: no other work explains that failure.
    certain = evaluate_role("base", result, Budget(latency_ms=1.0))
    assert certain.status == "FAIL" and not certain.unstable


def test_closing_line_names_the_unstable_roles() -> None:
    from seekdeploy.runtime.display import closing_line, unstable_note

    straddling = evaluate_role("base", windowed_result([BUSY, QUIET, QUIET]), Budget(latency_ms=2.0))
    clean = evaluate_role("motivated", windowed_result([QUIET, QUIET]), Budget(latency_ms=2.0))
    assert closing_line([clean]) == "PASSED"
    assert closing_line([straddling, clean]) == "UNSTABLE (the quietest windows PASSED)"
    assert unstable_note([straddling, clean]).startswith("base: the timed windows disagree with the budget")
    assert "busy" not in unstable_note([straddling, clean])  # the windows straddle; no other work was seen
    busy = evaluate_role("motivated", windowed_result([BUSY, BUSY, BUSY], busy_cores=[1.4, 1.5, 1.4]),
                         Budget(latency_ms=3.0))
    both = unstable_note([straddling, busy])
    assert "motivated: a failure was measured while other processes kept the machine busy" in both
    assert both.startswith("base: the timed windows disagree")
    assert unstable_note([clean]) == ""
