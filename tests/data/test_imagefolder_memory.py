"""Loading an image folder takes memory for one full-size image per process, not for the folder."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from imagefolders import write_large_photos

COUNT, WIDTH, HEIGHT = 16, 2400, 1800
FULL_DECODE_BYTES = COUNT * WIDTH * HEIGHT * 3  # what decoding the whole folder at once holds

PEAKS = textwrap.dedent("""
    import json, resource, sys
    from seekdeploy.data import load_dataset

    def peak_bytes():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB

    shape = dict(channels=3, height=32, width=32, workers=0)
    load_dataset("imagefolder:" + sys.argv[1], **shape)  # two images: the warmed-up baseline
    one = peak_bytes()
    dataset = load_dataset("imagefolder:" + sys.argv[2], **shape)
    print(json.dumps({"one": one, "all": peak_bytes(), "train": len(dataset.train)}))
""")


def test_loading_a_folder_of_photos_stays_under_a_fraction_of_its_full_size(tmp_path):
    small = write_large_photos(tmp_path / "two", 2, (WIDTH, HEIGHT))
    large = write_large_photos(tmp_path / "many", COUNT, (WIDTH, HEIGHT))
    done = subprocess.run([sys.executable, "-c", PEAKS, str(small), str(large)],
                          capture_output=True, text=True, timeout=300, check=True)
    peaks = json.loads(done.stdout.strip().splitlines()[-1])
    grown = peaks["all"] - peaks["one"]
    # The whole-folder decode held every full-size image at once (16 x 13 MB = 207 MB, twice
    # while resizing); streaming holds one at a time (measured: the peak grows 20-30 MB).
    assert grown < FULL_DECODE_BYTES / 4, (grown, peaks)
    assert peaks["train"] > 0
