"""What a deployer must do to an image to feed an exported model, written down beside the code that
does it during training (`_transform`), so the export manifest can state it exactly.

The description is plain JSON: where a source's pixels come from and how they become uint8
[0, 255] (`PixelSource`), the resize (method, antialiasing, pixel-centre convention, the library
call that defines it and which other library reproduces it), the colour conversion and its place
in the order, and the scaling and normalization. `tests/export/test_manifest_preprocessing.py` rebuilds
the preprocessing from this block alone with Pillow and reproduces an export's recorded accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The resize every source goes through (see `_transform.resize_images`): one definition, used both
# by the call and by the description, so the two cannot drift apart.
RESIZE_MODE = "bilinear"
RESIZE_ALIGN_CORNERS = False
RESIZE_ANTIALIAS = True
# ITU-R BT.601 luma weights, the usual RGB -> grey conversion.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)

_RESIZE_REFERENCE = ("torch.nn.functional.interpolate(images_uint8, size=(height, width), "
                     f"mode={RESIZE_MODE!r}, align_corners={RESIZE_ALIGN_CORNERS}, "
                     f"antialias={RESIZE_ANTIALIAS}) on uint8 (N, C, H, W) tensors")
# Measured on digits (8x8 -> 32, 16, 12x20, 5, 4), Fashion-MNIST (28 -> 32, 24, 16, 14, 10, 7) and
# random RGB (32 -> 48, 24, 16) with Pillow 13 and torch 2.14: identical, or at most 1 level apart
# on 1-3 % of pixels when shrinking (both round fixed-point sums, with different precision).
_RESIZE_EQUIVALENT = ("Pillow: Image.fromarray(uint8 HxW or HxWx3).resize((width, height), "
                      "Image.Resampling.BILINEAR): identical when enlarging, at most 1 level apart "
                      "on a few pixels when shrinking")
_RESIZE_NOT_EQUIVALENT = ("nearest-neighbour (other pixels: a digits model fed 8x8 -> 32x32 "
                          "nearest-neighbour digits loses most of its accuracy), and bilinear "
                          "without antialiasing when shrinking (OpenCV INTER_LINEAR, torch "
                          "antialias=False, TensorFlow's default)")


@dataclass(frozen=True)
class PixelSource:
    """Where a source's pixels come from and how they become uint8 [0, 255] (before any resize).

    `any_size`: images come in any size (image folders) rather than the arrays' one native size.
    """

    origin: str
    colour: str  # "grey" or "RGB" as stored by the source
    value_range: tuple[float, float] = (0.0, 255.0)
    to_uint8: str = "none: already uint8 in [0, 255]"
    polarity: str | None = None
    any_size: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form for manifests."""
        return {"origin": self.origin, "colour": self.colour,
                "value_range": list(self.value_range), "to_uint8": self.to_uint8,
                "polarity": self.polarity}


def describe_resize(source_size: tuple[int, int] | None, height: int, width: int) -> dict[str, Any]:
    """The resize step: method, its semantics, the defining call and an equivalent in Pillow."""
    return {
        "from": list(source_size) if source_size else "each image's own size",
        "to": [height, width], "applied": source_size is None or tuple(source_size) != (height, width),
        "method": RESIZE_MODE, "antialias": RESIZE_ANTIALIAS, "align_corners": RESIZE_ALIGN_CORNERS,
        "pixel_centres": "half-pixel: output pixel i samples input coordinate (i + 0.5) * in / out - 0.5",
        "filter": "triangle (tent) filter whose support widens by in/out when shrinking (antialias)",
        "dtype": "uint8 in, uint8 out (rounded to nearest, saturated to [0, 255])",
        "defined_by": _RESIZE_REFERENCE, "equivalent": _RESIZE_EQUIVALENT,
        "not_equivalent": _RESIZE_NOT_EQUIVALENT,
    }


def describe_colour(source_channels: int, channels: int) -> dict[str, Any]:
    """The colour step: what happens between the source's channels and the model's."""
    if source_channels == channels:
        method, formula, when = "none", "channels used as stored", "n/a"
    elif source_channels == 1 and channels == 3:
        method, formula, when = ("replicate", "R = G = B = grey (the one grey channel copied into "
                                 "all three)", "after resize (the same result either way)")
    else:
        red, green, blue = LUMA_WEIGHTS
        method, formula, when = ("bt601-luma", f"grey = round_half_even({red} R + {green} G + "
                                 f"{blue} B) in float, clipped to [0, 255], uint8",
                                 "before resize")
    order = "grey" if channels == 1 else "RGB"
    return {"from_channels": source_channels, "to_channels": channels, "method": method,
            "formula": formula, "when": when, "channel_order": order}


def describe_preprocessing(source: PixelSource, *, source_channels: int,
                           source_size: tuple[int, int] | None, channels: int, height: int,
                           width: int) -> dict[str, Any]:
    """The complete preprocessing from a source image to the model's float32 NCHW input.

    `steps` is the order a deployer follows; the other keys detail each step. Mean and std are
    added by the caller that knows them (the export manifest's input block).
    """
    colour = describe_colour(source_channels, channels)
    resize = describe_resize(source_size, height, width)
    steps = [f"read the source: {source.origin}",
             f"to uint8 [0, 255]: {source.to_uint8}"]
    resize_step = (f"resize to {height}x{width} (H x W): {RESIZE_MODE}, antialias="
                   f"{RESIZE_ANTIALIAS}, align_corners={RESIZE_ALIGN_CORNERS} (see resize)")
    colour_step = f"colour {source_channels} -> {channels} channels: {colour['method']} (see colour)"
    if not resize["applied"]:
        resize_step = f"no resize: the source is already {height}x{width}"
    if colour["method"] == "none":
        middle = [resize_step]
    elif colour["when"] == "before resize":
        middle = [colour_step, resize_step]
    else:
        middle = [resize_step, colour_step]
    steps += middle + ["scale: float32 x = pixels / 255",
                       "normalize per channel: x = (x - mean[c]) / std[c]",
                       "layout: NCHW (batch, channel, height, width), float32"]
    source_block = {**source.to_json(), "channels": source_channels,
                    "size": list(source_size) if source_size else "any (each image's own)"}
    return {"steps": steps, "source": source_block, "resize": resize, "colour": colour,
            "scale": {"divide_by": 255.0}, "channel_order": colour["channel_order"],
            "layout": "NCHW", "dtype": "float32"}
