"""`seekdeploy slice` on a real tiny run (shared BN): proven static models, weights_only static.pt,
the pair check with nothing role-private, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from seekdeploy.errors import CheckpointError
from seekdeploy.export.static_models import load_static
from seekdeploy.roles import ROLES
from helpers import cli_in_process, train_tiny_run


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory) -> Path:
    """A 1-epoch digits run with one set of BN statistics for both roles (--bn shared)."""
    return train_tiny_run(tmp_path_factory.mktemp("runs") / "shared", seed=1,
                          condition="random:p=0.5", motivated_spec="depth=2,1;width=8,8",
                          bn="shared")


def test_slice_writes_proven_static_models(shared_run, tmp_path):
    from seekdeploy.data import load_dataset, normalize
    from seekdeploy.nn import estimate_cost
    from seekdeploy.train.checkpoint import load_run

    code, stdout, stderr = cli_in_process("slice", str(shared_run), "--out", str(tmp_path))
    assert code == 0, stderr
    assert stdout.count("static vs supernet") == 2 and "PASSED" in stdout
    run = load_run(shared_run)
    data = load_dataset(run.dataset_name, **run.data_kwargs)
    val = normalize(data.val.images, data.mean, data.std)  # (N, 1, 8, 8)
    for role in ROLES:
        path = tmp_path / "shared" / role / "static.pt"
        payload = torch.load(path, weights_only=True)
        assert payload["role"] == role and payload["bn_role"] == "shared"
        static = load_static(path)
        spec = run.spec_for(role)
        with torch.no_grad():
            difference = (static(val) - run.supernet(val, spec, run.bn_role_for(role))).abs().max()
        assert float(difference) <= 1e-5
        assert payload["parity"]["max_abs"] <= 1e-5 and payload["parity"]["n"] == len(data.val)
        cost = estimate_cost(spec, in_channels=1, image_size=8, num_classes=10)
        assert sum(p.numel() for p in static.parameters()) == cost.params
        # Stock layers only: every leaf module of a sliced model is a torch.nn layer.
        leaves = [m for m in static.modules() if not list(m.children())]
        assert leaves and all(type(m).__module__.startswith("torch.nn.modules") for m in leaves)


def test_slice_one_role_and_pair_check_under_shared_bn(shared_run, tmp_path):
    from seekdeploy.export.pair import check_pair
    from seekdeploy.export.static_models import slice_role
    from seekdeploy.train.checkpoint import load_run

    code, _, stderr = cli_in_process("slice", str(shared_run), "--role", "base", "--out", str(tmp_path))
    assert code == 0, stderr
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == ["base"]
    run = load_run(shared_run)
    images = torch.zeros(4, 1, 8, 8).numpy()
    base, motivated = (slice_role(run, role, images) for role in ("base", "motivated"))
    pair = check_pair(run.supernet, base, motivated)
    # One set of statistics: every base tensor, BN statistics included, is a shared slice.
    assert pair["not_compared"] == [] and pair["checked"] == len(base.module.state_dict())
    assert pair["max_abs_diff"] == 0.0


def test_slice_errors_are_clear(shared_run, tmp_path):
    cases = [(tmp_path / "nowhere", "does not exist"), (shared_run / "..", "invalid run name")]
    for run_dir, message in cases:
        code, _, stderr = cli_in_process("slice", str(run_dir), "--out", str(tmp_path / "out"))
        assert code == 1 and message in stderr and "Traceback" not in stderr
    code, _, stderr = cli_in_process("slice", str(shared_run), "--role", "bass")
    assert code == 2 and "bass" in stderr  # click's own choice validation
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_static(tmp_path / "bad.pt")
    assert not (tmp_path / "out").exists()
