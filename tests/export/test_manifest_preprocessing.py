"""The export manifest declares the complete preprocessing: a deployer who follows only its
`input.preprocessing` block, with another image library (Pillow + numpy, no torch), feeds the
exported ONNX model the same pixels and gets the recorded test accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from helpers import cli_in_process, train_tiny_run

# The run trains on 8x8 grey digits enlarged to 3x16x16: both the resize and the colour step run.
SEED = 0


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """A 3-epoch digits run at 3x16x16 exported to ONNX (~10 s; both roles reach 50-60 % top-1);
    returns the export folder."""
    run_dir = train_tiny_run(tmp_path_factory.mktemp("runs") / "rgb16", 3, channels=3, height=16,
                             width=16, name="rgb16", batch_size=32, lr=0.1, warmup_epochs=0.0,
                             seed=SEED)
    out = tmp_path_factory.mktemp("exports")
    code, _, stderr = cli_in_process("export", str(run_dir), "--out", str(out))
    assert code == 0, stderr
    return out / "rgb16"


def _raw_digits_test_split() -> tuple[np.ndarray, np.ndarray]:
    """The raw source values (float 0..16, (M, 8, 8)) and labels of the run's test split. Which
    images form the split is selection, not preprocessing: it comes from the same split rule."""
    from sklearn.datasets import load_digits

    from seekdeploy.data._transform import TEST_FRACTION, split_stratified

    bunch = load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    _, held = split_stratified(labels, TEST_FRACTION, np.random.default_rng([SEED, 1]))
    return bunch.images[held], labels[held]


def _pil_resize(images: np.ndarray, height: int, width: int, resample: int) -> np.ndarray:
    """Resize uint8 (N, C, H, W) one channel plane at a time with Pillow."""
    return np.stack([np.stack([np.asarray(Image.fromarray(plane, "L").resize((width, height), resample))
                               for plane in image]) for image in images])


def _resample_from(resize: dict) -> int:
    """The Pillow filter the manifest's resize declares; anything else cannot be reproduced here."""
    if (resize["method"], resize["antialias"], resize["align_corners"]) == ("bilinear", True, False):
        assert "Pillow" in resize["equivalent"] and "BILINEAR" in resize["equivalent"]
        return Image.Resampling.BILINEAR
    pytest.fail(f"the manifest declares a resize this Pillow re-implementation cannot follow: {resize}")


def preprocess_from_manifest(raw: np.ndarray, input_block: dict,
                             resample: int | None = None) -> np.ndarray:
    """Source values (N, H, W) -> the model's float32 input, reading only the manifest's input block
    (`resample` overrides the declared resize, to show a wrong one does not reproduce)."""
    recipe = input_block["preprocessing"]
    source, colour, resize = recipe["source"], recipe["colour"], recipe["resize"]
    low, high = source["value_range"]
    assert "round_half_even" in source["to_uint8"] and f"* 255 / {int(high)}" in source["to_uint8"]
    pixels = np.clip(np.rint((raw - low) * (255.0 / (high - low))), 0, 255).astype(np.uint8)
    pixels = pixels.reshape(len(raw), source["channels"], *source["size"])  # (N, 1, 8, 8)
    height, width = resize["to"]
    assert colour["method"] == "replicate" and colour["when"].startswith("after resize")
    declared = _resample_from(resize)  # checks the declaration even when overridden
    pixels = _pil_resize(pixels, height, width, declared if resample is None else resample)
    pixels = np.repeat(pixels, colour["to_channels"], axis=1)  # (N, 3, H, W), R = G = B
    assert recipe["layout"] == "NCHW" and recipe["channel_order"] == "RGB"
    mean = np.asarray(recipe["mean"], dtype=np.float32)[None, :, None, None]
    std = np.asarray(recipe["std"], dtype=np.float32)[None, :, None, None]
    scaled = pixels.astype(np.float32) / np.float32(recipe["scale"]["divide_by"])
    return (scaled - mean) / std


def _top1(model: Path, inputs: np.ndarray, labels: np.ndarray) -> float:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    logits = session.run(None, {name: inputs})[0]  # (M, 10)
    return float(np.mean(logits.argmax(1) == labels))


@pytest.mark.parametrize("role", ["base", "motivated"])
def test_pillow_preprocessing_from_the_manifest_reproduces_the_recorded_accuracy(exported, role):
    manifest = json.loads((exported / role / "manifest.json").read_text())
    raw, labels = _raw_digits_test_split()
    inputs = preprocess_from_manifest(raw, manifest["input"])
    assert list(inputs.shape[1:]) == manifest["input"]["shape"][1:]
    recorded = manifest["accuracy"]
    assert recorded["n"] == len(labels)
    reproduced = _top1(exported / role / "model.onnx", inputs, labels)
    assert recorded["test_top1"] > 0.3  # a model that learned something, so agreement means something
    assert reproduced == pytest.approx(recorded["test_top1"], abs=0.5 / len(labels))


def test_the_pipelines_pixels_equal_the_pillow_reimplementation(exported):
    from seekdeploy.data import load_dataset, normalize

    manifest = json.loads((exported / "base" / "manifest.json").read_text())
    data = load_dataset("digits", channels=3, height=16, width=16, seed=SEED)
    raw, labels = _raw_digits_test_split()
    assert np.array_equal(data.test.labels.numpy(), labels)
    ours = preprocess_from_manifest(raw, manifest["input"])
    theirs = normalize(data.test.images, data.mean, data.std).numpy()
    assert np.abs(ours - theirs).max() <= 1e-6
    # A deployer who resized with nearest-neighbour would feed other pixels: the manifest matters.
    nearest = preprocess_from_manifest(raw, manifest["input"], resample=Image.Resampling.NEAREST)
    assert np.abs(nearest - theirs).max() > 0.5


@pytest.mark.parametrize("size", [(32, 32), (16, 16), (12, 20), (5, 5), (4, 4), (3, 7)])
def test_pipeline_resize_is_pillow_bilinear(size):
    """The manifest's `equivalent` claim: identical when enlarging, within 1 level when shrinking."""
    from sklearn.datasets import load_digits

    from seekdeploy.data._transform import resize_images

    digits = np.clip(np.rint(load_digits().images[:300] * (255 / 16)), 0, 255).astype(np.uint8)
    rgb = np.random.default_rng(0).integers(0, 256, (20, 3, 8, 8), dtype=np.uint8)
    for images in (digits[:, None], rgb):  # (N, C, 8, 8)
        ours = resize_images(images, *size).astype(np.int16)
        pillow = _pil_resize(images, *size, Image.Resampling.BILINEAR).astype(np.int16)
        limit = 0 if size[0] >= 8 and size[1] >= 8 else 1
        assert np.abs(ours - pillow).max() <= limit


def test_luma_conversion_is_declared_before_the_resize():
    """RGB sources shrunk to grey: the recipe names the luma formula and puts it first."""
    from seekdeploy.data._preprocessing import LUMA_WEIGHTS, PixelSource, describe_preprocessing

    recipe = describe_preprocessing(PixelSource(origin="RGB arrays", colour="RGB"),
                                    source_channels=3, source_size=(32, 32), channels=1,
                                    height=16, width=16)
    assert recipe["colour"]["method"] == "bt601-luma" and recipe["channel_order"] == "grey"
    assert all(str(weight) in recipe["colour"]["formula"] for weight in LUMA_WEIGHTS)
    steps = recipe["steps"]
    colour_at = next(i for i, step in enumerate(steps) if step.startswith("colour"))
    resize_at = next(i for i, step in enumerate(steps) if step.startswith("resize"))
    assert colour_at < resize_at
    same = describe_preprocessing(PixelSource(origin="x", colour="grey"), source_channels=1,
                                  source_size=(16, 16), channels=1, height=16, width=16)
    assert not same["resize"]["applied"] and any(s.startswith("no resize") for s in same["steps"])
