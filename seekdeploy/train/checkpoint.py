"""Checkpoints of a training run and `load_run` for the parts that consume a run (slice, export).

A checkpoint is one dict of plain data (tensors, dicts, lists, str, int, float, bool, None), written
atomically (`seekdeploy._io.atomic_path` + `torch.save`) and read with `weights_only=True`. It holds
the model's construction arguments so the supernet can be rebuilt from the checkpoint alone, the
resolved config, and every piece of state a resumed run needs to continue bit-for-bit.
"""

from __future__ import annotations

import dataclasses
import enum
import io
import pickle
import random
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy import layout
from seekdeploy._io import atomic_path
from seekdeploy.errors import CheckpointError
from seekdeploy.roles import Role, statistics_of

if TYPE_CHECKING:
    import torch

    from seekdeploy.nn.base import Supernet
    from seekdeploy.nn.spec import SubnetSpec

FORMAT_VERSION = 1


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write `payload` (plain data only) atomically to `path`; the previous file survives a crash."""
    import torch

    payload = {"format": layout.CHECKPOINT_FORMAT, "format_version": FORMAT_VERSION, **payload}
    # Serialize in memory, then write with plain file IO: torch.save's own writer reports a full
    # disk as a vague RuntimeError, a plain write as OSError (ENOSPC/EFBIG), which atomic_path
    # turns into a clear error that keeps the previous checkpoint.
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())
    return Path(path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; a missing, corrupt or foreign file raises
    CheckpointError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first with `seekdeploy train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile,
            pickle.UnpicklingError) as exc:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}: {_first_line(exc)}); "
            "restore it from a backup or train the run again") from exc
    # isinstance first: a foreign file may hold a tensor here, whose `!=` is not a bool.
    if not isinstance(payload, dict) or not isinstance(payload.get("format"), str) \
            or payload["format"] != layout.CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a seekdeploy training checkpoint")
    if not isinstance(payload.get("format_version"), int) or \
            payload["format_version"] != FORMAT_VERSION:
        raise CheckpointError(f"{path} has checkpoint format {payload.get('format_version')}, "
                              f"this seekdeploy reads {FORMAT_VERSION}; use a matching version")
    return payload


def _plain(value: Any) -> Any:
    # Dataclasses, enums and tuples become dicts, values and lists: weights_only-loadable.
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    return value


def supernet_kwargs(supernet: Supernet) -> dict[str, Any]:
    """The supernet's construction arguments as plain data (family, config, sizes, BN roles)."""
    return _plain(supernet.construction_kwargs())


def _create(model_args: dict[str, Any]) -> Supernet:
    from seekdeploy import nn as sd_nn

    # create_supernet takes the config in its `to_json()` form and validates it.
    config = {key: value for key, value in model_args["config"].items() if key != "family"}
    return sd_nn.create_supernet(
        model_args["family"], config, num_classes=int(model_args["num_classes"]),
        in_channels=int(model_args["in_channels"]), image_size=int(model_args["image_size"]),
        bn_roles=tuple(model_args["bn_roles"]),
        private_roles=tuple(model_args.get("private_roles", ())),
        private_head=bool(model_args.get("private_head", False)),
        private_convs=bool(model_args.get("private_convs", False)))


def check_declared_shapes(model_args: dict[str, Any], state_dict: Any) -> None:
    """Build the declared supernet on the `meta` device (shapes only, nothing allocated) and
    refuse the checkpoint unless its tensors have exactly those names and shapes: a file that
    declares a huge model beside small weights must not make the loader allocate the model."""
    import torch

    if not isinstance(state_dict, dict):
        raise TypeError("the checkpoint's state_dict is not a mapping")
    with torch.device("meta"):
        declared = {name: tuple(t.shape) for name, t in _create(model_args).state_dict().items()}
    stored = {name: tuple(t.shape) for name, t in state_dict.items()
              if isinstance(t, torch.Tensor)}
    if stored != declared:
        wrong = sorted(set(stored) ^ set(declared)) or sorted(
            name for name in declared if stored[name] != declared[name])
        first = wrong[0]
        raise ValueError(f"the declared model does not match the stored weights ({len(wrong)} "
                         f"tensor(s) differ, e.g. {first}: declared "
                         f"{declared.get(first, 'absent')}, stored {stored.get(first, 'absent')})")


def build_supernet(model_args: dict[str, Any], state_dict: Any = None) -> Supernet:
    """Rebuild the supernet described by a checkpoint's `model` entry (weights not loaded). With
    the checkpoint's `state_dict`, its tensor shapes are checked against the declared model
    first, before the model is allocated."""
    if not isinstance(model_args, dict) or not isinstance(model_args.get("config"), dict):
        # A foreign or damaged file; callers turn this into a CheckpointError naming the file.
        raise TypeError("the checkpoint's model entry is not a mapping with a 'config' mapping")
    if state_dict is not None:
        check_declared_shapes(model_args, state_dict)
    return _create(model_args)


def capture_rng(extra: dict[str, torch.Generator]) -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states plus named generators, as plain data."""
    import numpy as np
    import torch

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "generators": {key: gen.get_state() for key, gen in extra.items()},
    }
    if torch.cuda.is_available():
        state["cuda"] = list(torch.cuda.get_rng_state_all())
    return state


def restore_rng(state: dict[str, Any], extra: dict[str, torch.Generator]) -> None:
    """Inverse of `capture_rng`."""
    import numpy as np
    import torch

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    for key, gen in extra.items():
        gen.set_state(state["generators"][key])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class LoadedRun:
    """A trained run, rebuilt from its checkpoint: the supernet (eval mode) and its pair of specs."""

    run_dir: Path
    supernet: Supernet
    base_spec: SubnetSpec
    motivated_spec: SubnetSpec
    config: dict[str, Any]
    dataset_name: str
    data_kwargs: dict[str, Any]
    bn_roles: tuple[str, ...]
    metrics: dict[str, Any]

    def bn_role_for(self, role: Role) -> str:
        """The BN statistics `role` runs with."""
        return statistics_of(role, self.bn_roles)

    def spec_for(self, role: Role) -> SubnetSpec:
        """The spec of `role`."""
        return role.pick(self.base_spec, self.motivated_spec)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild a run's supernet from `run_dir/checkpoint.pt` (weights_only), in eval mode."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist; train one with "
                              "`seekdeploy train --profile P --out runs/NAME`")
    payload = read_checkpoint(run_dir / layout.CHECKPOINT)
    try:
        return _rebuild_run(run_dir, payload)
    except MALFORMED_PAYLOAD_ERRORS as exc:
        raise malformed_checkpoint_error(run_dir / layout.CHECKPOINT, exc) from exc


# What indexing and rebuilding a weights_only-loadable but foreign payload can raise.
MALFORMED_PAYLOAD_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError,
                            RuntimeError)


def _first_line(exc: BaseException) -> str:
    # torch's messages run to several lines; an error is one line (the traceback has the rest).
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def malformed_checkpoint_error(path: Path, exc: BaseException) -> CheckpointError:
    """The CheckpointError for a checkpoint whose contents do not describe a seekdeploy run."""
    return CheckpointError(f"checkpoint {path} does not match this seekdeploy's models "
                           f"({type(exc).__name__}: {_first_line(exc)}); it was written by another "
                           "version or tool, or edited. Train the run again")


def _rebuild_run(run_dir: Path, payload: dict[str, Any]) -> LoadedRun:
    from seekdeploy import nn as sd_nn

    model_args = payload["model"]
    supernet = build_supernet(model_args, payload["state_dict"])
    supernet.load_state_dict(payload["state_dict"])
    base = sd_nn.spec_from_json(model_args["base_spec"])
    motivated = sd_nn.spec_from_json(model_args["motivated_spec"])
    supernet.eval()
    return LoadedRun(run_dir=run_dir, supernet=supernet, base_spec=base, motivated_spec=motivated,
                     config=dict(payload["config"]), dataset_name=str(payload["data"]["name"]),
                     data_kwargs=dict(payload["data"]["kwargs"]),
                     bn_roles=tuple(str(role) for role in model_args["bn_roles"]),
                     metrics=dict(payload.get("final", {}) or {}))
