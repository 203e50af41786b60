"""Image folders in bounded memory: peak memory of `seekdeploy train` on 300 and 3,000 photos.

    python bench/imagefolder_memory.py [--sizes 300,3000] [--work-dir /tmp/seekdeploy-bench-images]

Writes photo-sized JPEG folders with Pillow (2000x1500 pixels, three classes, low quality so 3,000
of them stay small on disk; kept in --work-dir for the next run), then, per folder, trains one
epoch of a tiny pair through the real command (`python -m seekdeploy train --profile x86-cpu
--data imagefolder:... --epochs 1`) twice: with an empty image cache (decode + cache build +
training) and again with the cache in place. For each it reports the peak resident memory of the
largest process (what `/usr/bin/time -v` reports) and the peak proportional memory of the whole
process tree (workers included, shared pages counted once), sampled every 50 ms. On the smaller
folder it also measures the first pass's decode throughput without worker processes and with the
default number, and how much faster the cached second pass reads the resized pixels than the
first pass made them (every image touched; with the cache file's pages evicted from the page
cache first, and warm). The machine's load average is recorded beside the figures.
Goals (issue 26): peak <= 1.5 GiB for both folders, the 3,000-photo peak within 1.3x of the
300-photo one, the second pass >= 5x faster. Writes bench/results/imagefolder_memory.json.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from seekdeploy._io import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("beach", "forest", "city")
PHOTO_SIZE = (2000, 1500)  # (width, height)
TINY_PAIR = ["--arch", "resnet", "--base", "depth=1,1;width=4,8",
             "--motivated", "depth=1,1;width=8,16", "--batch-size", "64"]
GOAL_PEAK_GIB, GOAL_GROWTH, GOAL_READ_SPEEDUP = 1.5, 1.3, 5.0
MIB = 1 << 20


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="300,3000", help="photos per folder, comma-separated")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir())
                        / "seekdeploy-bench-images", help="where the photo folders are kept")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results"
                        / "imagefolder_memory.json")
    return parser.parse_args(argv)


def write_photos(root: Path, count: int) -> dict[str, Any]:
    """`count` 2000x1500 JPEGs in three class folders (reused when already complete)."""
    from PIL import Image

    done = root / f".complete-{count}"
    start = time.perf_counter()
    if not done.is_file():
        rng = np.random.default_rng(count)
        patterns = [_class_pattern(label) for label in range(len(CLASSES))]
        for index in range(count):
            label = index % len(CLASSES)
            folder = root / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            # Each photo: its class's pattern shifted and brightened at random (cheap to make).
            shift = rng.integers(0, PHOTO_SIZE[0], 2)
            pixels = np.roll(patterns[label], (int(shift[0]) % PHOTO_SIZE[1], int(shift[1])),
                             axis=(0, 1))
            pixels = pixels + np.uint8(rng.integers(0, 40))  # wraps: a colour change, not noise
            Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=25)
        done.write_text("complete\n")
    files = [p for p in root.rglob("*.jpg")]
    return {"images": len(files), "bytes_on_disk": sum(p.stat().st_size for p in files),
            "pixels": list(PHOTO_SIZE), "seconds_to_write": round(time.perf_counter() - start, 1)}


def _class_pattern(label: int) -> np.ndarray:
    width, height = PHOTO_SIZE
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)  # (H, W) each
    scale = (label + 1) * 0.004  # each class its own stripe frequency and direction
    channels = [127 + 120 * np.sin(xs * scale + ys * scale * (c - 1) + c) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.uint8)  # (H, W, 3)


def _tree(pid: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += parents.get(current, [])
    return found


def _pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class TreeMemory:
    """Samples the summed proportional memory (PSS) of a process and its descendants."""

    def __init__(self, pid: int, interval_s: float = 0.05) -> None:
        self.pid, self.interval_s, self.peak_bytes = pid, interval_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(_pss_bytes(pid) for pid in _tree(self.pid))
            self.peak_bytes = max(self.peak_bytes, total)
            self._stop.wait(self.interval_s)

    def stop(self) -> int:
        """Stop sampling; return the peak in bytes."""
        self._stop.set()
        self._thread.join()
        return self.peak_bytes


def train_once(folder: Path, cache_dir: Path, out_dir: Path) -> dict[str, Any]:
    """One epoch through `seekdeploy train`; its peak memory and wall time."""
    import resource

    command = [sys.executable, "-m", "seekdeploy", "train", "--profile", "x86-cpu",
               "--data", f"imagefolder:{folder}", "--epochs", "1", *TINY_PAIR,
               "--out", str(out_dir)]
    env = dict(os.environ, SEEKDEPLOY_CACHE_DIR=str(cache_dir))
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    monitor = TreeMemory(process.pid)
    out, err = process.communicate()
    tree_peak = monitor.stop()
    # The child is reaped: RUSAGE_CHILDREN's ru_maxrss is the largest resident set of it and its
    # reaped descendants (decode workers), over every child this process reaped, so each measured
    # run goes through a fresh helper interpreter (`_train_in_helper`).
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    if process.returncode != 0:
        raise SystemExit(f"seekdeploy train failed ({process.returncode}):\n{err[-3000:]}")
    return {"wall_s": round(time.perf_counter() - start, 1),
            "peak_rss_mib": round(largest / MIB, 1), "peak_tree_pss_mib": round(tree_peak / MIB, 1),
            "last_line": (out.strip().splitlines() or [""])[-1]}


def _train_in_helper(folder: Path, cache_dir: Path, out_dir: Path) -> dict[str, Any]:
    import json

    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); import imagefolder_memory as b; "
            "from pathlib import Path; print(json.dumps(b.train_once(Path(sys.argv[2]), "
            "Path(sys.argv[3]), Path(sys.argv[4]))))")
    done = subprocess.run([sys.executable, "-c", code, str(REPO / "bench"), str(folder),
                           str(cache_dir), str(out_dir)], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def _evict(folder: Path) -> None:
    for path in folder.rglob("*.npy"):
        with open(path, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def _touch_all(dataset) -> int:
    return sum(int(split.images.sum()) for split in (dataset.train, dataset.val, dataset.test))


def decode_and_read(folder: Path, cache_root: Path, workers: int) -> dict[str, Any]:
    """First pass (decode, resize, build the cache) vs cached passes, every image touched."""
    from seekdeploy.data import load_dataset

    cache_dir = cache_root / f"workers-{workers}"
    os.environ["SEEKDEPLOY_CACHE_DIR"] = str(cache_dir)
    name, shape = f"imagefolder:{folder}", dict(channels=3, height=32, width=32, workers=workers)
    start = time.perf_counter()
    first = _touch_all(load_dataset(name, **shape))
    first_s = time.perf_counter() - start
    _evict(cache_dir)
    start = time.perf_counter()
    cold = _touch_all(load_dataset(name, **shape))
    cold_s = time.perf_counter() - start
    start = time.perf_counter()
    warm = _touch_all(load_dataset(name, **shape))
    warm_s = time.perf_counter() - start
    if not first == cold == warm:
        raise SystemExit("the cached pixels differ from the decoded ones")
    images = sum(1 for _ in folder.rglob("*.jpg"))
    return {"workers": workers, "images": images, "first_pass_s": round(first_s, 2),
            "decode_images_per_s": round(images / first_s, 1),
            "cached_pass_evicted_s": round(cold_s, 3), "cached_pass_warm_s": round(warm_s, 3),
            "speedup_evicted": round(first_s / cold_s, 1), "speedup_warm": round(first_s / warm_s, 1)}


def _environment() -> dict[str, Any]:
    import PIL
    import torch

    from seekdeploy.data._decode import default_workers

    return {"machine": platform.machine(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "pillow": PIL.__version__,
            "default_workers": default_workers(10_000), "load_average": list(os.getloadavg()),
            "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}


def main(argv: list[str] | None = None) -> int:
    """Generate, measure, print, write the JSON."""
    from seekdeploy.data._decode import default_workers

    args = parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")]
    result: dict[str, Any] = {"command": "python bench/imagefolder_memory.py --sizes " + args.sizes,
                              "environment": _environment(), "folders": {}}
    with tempfile.TemporaryDirectory(prefix="imagefolder-bench-") as scratch_text:
        scratch = Path(scratch_text)
        for size in sizes:
            folder = args.work_dir / f"photos-{size}"
            entry = {"folder": write_photos(folder, size)}
            print(f"{size} photos: {entry['folder']}", flush=True)
            cache = scratch / f"cache-{size}"
            entry["train_empty_cache"] = _train_in_helper(folder, cache, scratch / f"run-{size}-a")
            entry["train_with_cache"] = _train_in_helper(folder, cache, scratch / f"run-{size}-b")
            print(f"  train: {entry['train_empty_cache']}\n  again: {entry['train_with_cache']}",
                  flush=True)
            result["folders"][str(size)] = entry
        smallest = args.work_dir / f"photos-{min(sizes)}"
        passes = [decode_and_read(smallest, scratch / "passes", workers)
                  for workers in (0, default_workers(10_000))]
        for row in passes:
            print(f"  passes: {row}", flush=True)
        result["passes"] = passes
    result["environment"]["load_average_after"] = list(os.getloadavg())
    result["goals"] = _goals(result, sizes)
    print(_summary(result, sizes))
    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


def _goals(result: dict[str, Any], sizes: list[int]) -> dict[str, Any]:
    folders = result["folders"]
    peaks = {size: max(folders[str(size)][run]["peak_rss_mib"]
                       for run in ("train_empty_cache", "train_with_cache")) for size in sizes}
    growth = peaks[max(sizes)] / peaks[min(sizes)]
    speedup = min(row["speedup_evicted"] for row in result["passes"])
    return {"peak_rss_mib_by_size": peaks,
            "peak_within_1_5_gib": all(p <= GOAL_PEAK_GIB * 1024 for p in peaks.values()),
            "growth_largest_over_smallest": round(growth, 3),
            "growth_within_1_3x": growth <= GOAL_GROWTH,
            "cached_pass_speedup_evicted_min": speedup,
            "cached_pass_at_least_5x": speedup >= GOAL_READ_SPEEDUP}


def _summary(result: dict[str, Any], sizes: list[int]) -> str:
    lines = ["", "photos  run            peak RSS (MiB)  tree PSS (MiB)  wall (s)"]
    for size in sizes:
        for run in ("train_empty_cache", "train_with_cache"):
            row = result["folders"][str(size)][run]
            lines.append(f"{size:>6}  {run[6:]:<13}  {row['peak_rss_mib']:>14}  "
                         f"{row['peak_tree_pss_mib']:>14}  {row['wall_s']:>8}")
    for row in result["passes"]:
        lines.append(f"decode, {row['workers']} workers: {row['decode_images_per_s']} images/s; "
                     f"cached pass {row['speedup_evicted']}x faster (evicted), "
                     f"{row['speedup_warm']}x (warm)")
    lines.append(f"goals: {result['goals']}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
