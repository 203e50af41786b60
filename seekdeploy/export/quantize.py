"""INT8 ONNX for CPU runtimes (ONNX Runtime, OpenVINO): static QDQ quantization and its proof.

Made with ONNX Runtime's own tools: `quant_pre_process` (shape inference and the graph
simplifications quantization should see first), then `quantize_static` in QDQ format with int8
weights quantized per output channel and uint8 activations (U8S8, ONNX Runtime's recommended pair
on x86-64) whose ranges are calibrated on TRAINING images only — never validation or test images,
which prove the result. The calibration method and image count are options.

The proof that fits a quantized model: top-1 agreement with the fp32 model on the validation
images (the INT8 tolerance of `export.parity`) and test top-1 at most `max_accuracy_drop_pp`
percentage points below the fp32 model's. A model that drops more is refused with an
`ExportError`; it is written inside the export's staging folder, so a refusal leaves nothing.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seekdeploy._io import atomic_path
from seekdeploy.errors import ConfigError, ExportError

if TYPE_CHECKING:
    import numpy as np

    from seekdeploy.profiles.schema import HardwareProfile

DEFAULT_CALIBRATION_IMAGES = 256
DEFAULT_MAX_ACCURACY_DROP_PP = 1.0  # used when neither the profile nor --max-accuracy-drop says
_CALIBRATION_BATCH = 32


class CalibrationMethod(str, enum.Enum):
    """How activation ranges are chosen from the calibration images (ONNX Runtime's methods)."""

    MINMAX = "minmax"  # the observed min and max: no clipping, coarser steps
    ENTROPY = "entropy"  # the range that keeps the histogram's KL divergence smallest
    PERCENTILE = "percentile"  # clip at the 99.999th percentile of |activation|


@dataclass(frozen=True)
class Int8Settings:
    """How to make and judge the INT8 model. `max_accuracy_drop_pp` None = profile, else default."""

    calibration_method: CalibrationMethod = CalibrationMethod.MINMAX
    calibration_images: int = DEFAULT_CALIBRATION_IMAGES
    max_accuracy_drop_pp: float | None = None

    def __post_init__(self) -> None:
        if self.calibration_images < 1:
            raise ConfigError(f"--calibration-images must be >= 1, got {self.calibration_images}")
        drop = self.max_accuracy_drop_pp
        if drop is not None and not drop >= 0:
            raise ConfigError(f"--max-accuracy-drop must be >= 0 percentage points, got {drop}")


def allowed_drop_pp(settings: Int8Settings, profile: HardwareProfile | None) -> tuple[float, str]:
    """The allowed test top-1 drop in percentage points and where it comes from (option > profile > default)."""
    if settings.max_accuracy_drop_pp is not None:
        return float(settings.max_accuracy_drop_pp), "--max-accuracy-drop"
    declared = getattr(getattr(profile, "runtime", None), "int8_max_accuracy_drop_pp", None)
    if declared is not None:
        return float(declared), f"profile {profile.name} (runtime.int8_max_accuracy_drop_pp)"
    return DEFAULT_MAX_ACCURACY_DROP_PP, "default"


@dataclass(frozen=True)
class QuantizedModel:
    """What `quantize_int8` wrote and how (for the manifest)."""

    path: Path
    recipe: dict[str, Any]


def quantize_int8(fp32_path: Path, out_path: Path, calibration_images: np.ndarray,
                  method: CalibrationMethod) -> QuantizedModel:
    """Write the QDQ INT8 copy of `fp32_path` to `out_path`, calibrated on `calibration_images`
    ((N, C, H, W) float32 normalized training images); `ExportError` when quantization fails."""
    import onnxruntime
    from onnxruntime import quantization as ortq

    fp32_path, out_path = Path(fp32_path), Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if len(calibration_images) == 0:
        raise ExportError("INT8 quantization needs calibration images; the training split is empty")
    methods = {CalibrationMethod.MINMAX: ortq.CalibrationMethod.MinMax,
               CalibrationMethod.ENTROPY: ortq.CalibrationMethod.Entropy,
               CalibrationMethod.PERCENTILE: ortq.CalibrationMethod.Percentile}
    reader = _ImageReader(fp32_path, calibration_images)
    with tempfile.TemporaryDirectory(prefix=".tmp-quantize-", dir=out_path.parent) as work, \
            _quiet_root_logger(), atomic_path(out_path) as tmp:
        prepared = Path(work) / "prepared.onnx"
        try:
            ortq.quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
            ortq.quantize_static(
                str(prepared), str(tmp), reader, quant_format=ortq.QuantFormat.QDQ,
                per_channel=True, activation_type=ortq.QuantType.QUInt8,
                weight_type=ortq.QuantType.QInt8, calibrate_method=methods[method],
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        except (RuntimeError, ValueError, KeyError) as exc:  # ORT's tools raise these for bad graphs
            raise ExportError(f"ONNX Runtime could not quantize {fp32_path.name} to INT8: {exc}") from exc
    recipe = {
        "tool": f"onnxruntime.quantization {onnxruntime.__version__} (quant_pre_process + quantize_static)",
        "format": "QDQ", "weights": "int8, symmetric, per output channel",
        "activations": "uint8, asymmetric, per tensor", "calibration_method": method.value,
        "calibration_split": "train", "calibration_images": int(reader.used),
        "source": fp32_path.name,
    }
    return QuantizedModel(out_path, recipe)


class _ImageReader:
    """onnxruntime's CalibrationDataReader contract: `get_next()` -> feed dict, or None when done."""

    def __init__(self, model_path: Path, images: np.ndarray) -> None:
        import numpy as np
        import onnx

        graph = onnx.load(str(model_path), load_external_data=False).graph
        self.input_name = graph.input[0].name
        fixed = graph.input[0].type.tensor_type.shape.dim[0].dim_value  # 0 for a dynamic axis
        step = fixed or _CALIBRATION_BATCH
        usable = len(images) - len(images) % step if fixed else len(images)
        if usable == 0:
            raise ExportError(f"the model's fixed batch is {fixed} but only {len(images)} calibration "
                              f"images were given; use --calibration-images {fixed} or more")
        data = np.ascontiguousarray(images[:usable], dtype=np.float32)  # (N, C, H, W)
        self.batches = [data[start:start + step] for start in range(0, usable, step)]
        self.used = usable
        self._next = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= len(self.batches):
            return None
        batch = self.batches[self._next]
        self._next += 1
        return {self.input_name: batch}

    def rewind(self) -> None:
        self._next = 0


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    # ORT's quantizer logs advice through the root logger at WARNING for every model.
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def check_accuracy_drop(*, fp32_top1: float, int8_top1: float, allowed_pp: float, source: str,
                        what: str) -> dict[str, Any]:
    """The INT8 model's test top-1 drop; `ExportError` (with the figures and fixes) above `allowed_pp`."""
    drop_pp = 100.0 * (fp32_top1 - int8_top1)
    if drop_pp > allowed_pp + 1e-9:
        raise ExportError(
            f"{what} loses {drop_pp:.2f} percentage points of test top-1 ({fp32_top1:.2%} fp32 -> "
            f"{int8_top1:.2%} int8), more than the {allowed_pp:g} pp allowed by {source}; nothing "
            "was exported. Try --calibration-method entropy or percentile, more "
            "--calibration-images, or allow more with --max-accuracy-drop"
        )
    return {"fp32_test_top1": fp32_top1, "int8_test_top1": int8_top1, "drop_pp": drop_pp,
            "allowed_drop_pp": allowed_pp, "allowed_from": source}
