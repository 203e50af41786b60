"""How near the validation and test images are to the training images (pixel space).

The trainer draws its validation split from the training images (seeded by the run's seed);
the test split is the dataset's own. If validation held many more near-copies of training images
than test does, a model that fits the training images more closely would gain more on validation
than on test, and selection on validation would favour it. This prints, for each split, the share
of images whose nearest training image (L2 distance, pixels scaled to [0, 1]) lies within a few
thresholds, and the median nearest distance. 1 thread; about 20 s for Fashion-MNIST.

    python bench/split_overlap.py --data-dir runs/pair_vs_baselines/data/fashion-mnist-n60000-s0 --seed 0
"""

from __future__ import annotations

import argparse
import json
import sys

THRESHOLDS = (1.0, 2.0, 3.0)
CHUNK = 500


def nearest_distances(queries, reference):
    """Per query row, the L2 distance to its nearest reference row (both (N, D) float tensors)."""
    import torch

    return torch.cat([torch.cdist(queries[i:i + CHUNK], reference).min(dim=1).values
                      for i in range(0, len(queries), CHUNK)])


def overlap(distances) -> dict[str, float]:
    """Share of images within each threshold, and the median nearest distance."""
    figures = {f"within_{t:g}": float((distances < t).float().mean()) for t in THRESHOLDS}
    return figures | {"median": float(distances.median())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default="fashion-mnist", help="a built-in dataset name")
    parser.add_argument("--data-dir", help="folder holding the dataset's files")
    parser.add_argument("--seed", type=int, default=0, help="the run seed that draws the validation split")
    args = parser.parse_args(argv)
    import torch

    from seekdeploy.data.registry import load_dataset
    from seekdeploy.errors import SeekdeployError

    torch.set_num_threads(1)
    try:
        data = load_dataset(args.data, channels=1, height=28, width=28, seed=args.seed,
                            data_dir=args.data_dir)
    except SeekdeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1

    def flat(split):
        return split.images.reshape(len(split), -1).float() / 255

    train = flat(data.train)
    result = {"data": args.data, "seed": args.seed, "train": len(data.train),
              **{name: {"images": len(getattr(data, name)),
                        **overlap(nearest_distances(flat(getattr(data, name)), train))}
                 for name in ("val", "test")}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
