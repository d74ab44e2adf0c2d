"""Training memory follows the batch, not the dataset: a full random-order pass over a feature cache
through the training loop's batch reader leaves the process's peak RSS where it was.

Measured in a fresh process (VmHWM), against the same cache loaded into memory as a control that
shows the measurement sees the data when it is resident. The real-shape figures (128×332 clips,
1k and 10k; 30 000 × 128×99) come from benchmarks/train_memory.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest

MIB = 2 ** 20
CHILD = r"""
import json, sys
from pathlib import Path
import numpy as np, torch
from uvac.pipeline import load_split
from uvac.training import gather

def peak():
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(l.split()[1] for l in status if l.startswith("VmHWM"))) * 1024

split = load_split(sys.argv[1], "train", lazy=True)
before = peak()
x = split["x"] if sys.argv[2] == "stream" else torch.from_numpy(np.asarray(split["x"]))
perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
total = 0.0
for start in range(0, len(x), 64):
    total += float(gather(x, perm[start:start + 64]).sum())
print(json.dumps({"growth": peak() - before, "total": total}))
"""


@pytest.fixture(scope="module")
def big_cache(tmp_path_factory):
    """300 MiB of clips (1×64×64 float32), written in blocks so the test process stays small too."""
    path = tmp_path_factory.mktemp("cache") / "train.npz"
    n, shape = 19200, (1, 64, 64)
    rng = np.random.default_rng(0)
    x = np.lib.format.open_memmap(path.with_suffix(".npy"), mode="w+", dtype=np.float32, shape=(n, *shape))
    for start in range(0, n, 2000):
        x[start:start + 2000] = rng.random((min(2000, n - start), *shape), dtype=np.float32)
    x.flush()
    del x
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.write(path.with_suffix(".npy"), "x.npy")
        with zf.open("mask.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array(f, np.ones((n, shape[-1]), np.float32))
    path.with_suffix(".npy").unlink()
    return path


def run(cache, mode):
    out = subprocess.run([sys.executable, "-c", CHILD, str(cache.parent), mode], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(sys.platform != "linux", reason="reads VmHWM from /proc")
def test_a_pass_over_the_cache_does_not_grow_peak_memory(big_cache):
    data_bytes = 19200 * 64 * 64 * 4
    streamed, resident = run(big_cache, "stream"), run(big_cache, "memory")
    assert resident["growth"] > 0.9 * data_bytes          # the control: resident data are seen
    assert streamed["growth"] < 40 * MIB, streamed         # streamed: a batch, not 300 MiB
    assert streamed["total"] == pytest.approx(resident["total"], rel=1e-6)  # and every clip was read
