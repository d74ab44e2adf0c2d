"""Peak resident memory of UVAC training from a feature cache, against the same data held in memory.

For each dataset size a synthetic cache (`<split>.npz` as rule features writes it) is trained on
in a fresh process, twice: streamed from disk (what `rule train` does: uvac.pipeline.load_split
lazy=True) and loaded into memory first (the reference). Peak RSS is the child's VmHWM. Training
runs for one epoch or until --seconds have passed, whichever is first; the report gives how many
clips each child had read by then, so a partial epoch is never passed off as a whole one.

    python benchmarks/train_memory.py                       # 1k and 10k clips of 1×128×332 (TAU2019, 10 s)
    python benchmarks/train_memory.py --frames 99 --clips 30000   # AudioMNIST-sized (issue 6)
"""
from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from common import write_report  # noqa: E402  (benchmarks/common.py)

GIB = 2 ** 30


def write_cache(path: Path, clips: int, bins: int, frames: int, seed: int = 0) -> None:
    """An uncompressed NPZ of clips in [0, 1], written block by block through np.save's format."""
    rng = np.random.default_rng(seed)
    x = np.lib.format.open_memmap(path.with_suffix(".x.npy"), mode="w+", dtype=np.float32,
                                  shape=(clips, 1, bins, frames))
    for start in range(0, clips, 1000):
        block = x[start:start + 1000]
        block[:] = rng.random(block.shape, dtype=np.float32)
    x.flush()
    del x
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.write(path.with_suffix(".x.npy"), "x.npy")
        for name, value in {"mask": np.ones((clips, frames), np.float32),
                            "clip_id": np.array([f"c{i}" for i in range(clips)]),
                            "label_id": np.arange(clips) % 10}.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                np.lib.format.write_array(f, value)
    path.with_suffix(".x.npy").unlink()


def child(cache: Path, mode: str) -> None:
    """Train one epoch; on SIGTERM or at the end print peak RSS and the clips read, as JSON."""
    from uvac.clip_store import NpzRows
    from uvac.estimators import UVAC
    from uvac.pipeline import load_split

    read = {"clips": 0 if mode == "stream" else None}

    class CountingRows(NpzRows):
        def __getitem__(self, index):  # batches are index arrays; the validation pass reads slices
            rows = super().__getitem__(index)
            read["clips"] += len(rows) if isinstance(index, np.ndarray) else 0
            return rows

    def report(*_):
        status = Path("/proc/self/status").read_text()
        peak_kib = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        print(json.dumps({"peak_rss_gib": peak_kib / 2 ** 20, "clips_read": read["clips"]}), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    split = load_split(cache.parent, cache.stem, lazy=True)
    x = CountingRows(cache) if mode == "stream" else np.asarray(split["x"])
    UVAC(10, 10, epochs=1, progress=False).fit(x, split["mask"])
    report()


def measure(cache: Path, mode: str, seconds: float) -> dict:
    proc = subprocess.Popen([sys.executable, __file__, "--child", str(cache), mode], stdout=subprocess.PIPE, text=True)
    t0 = time.perf_counter()
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate()
    result = json.loads(out.strip().splitlines()[-1])
    return {"mode": mode, **result, "seconds": round(time.perf_counter() - t0, 1)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", default="1000,10000", help="comma-separated dataset sizes")
    parser.add_argument("--frames", type=int, default=332, help="frames per clip (332: 10 s TAU2019; 99: 1 s)")
    parser.add_argument("--bins", type=int, default=128, help="frequency bins per clip (the papers: 128)")
    parser.add_argument("--seconds", type=float, default=180, help="training time limit per child")
    parser.add_argument("--limit-gib", type=float, default=3.0, help="the target for streamed training")
    parser.add_argument("--out", default="")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(Path(args.child[0]), args.child[1])

    rows = []
    with tempfile.TemporaryDirectory(prefix="uvac-mem-") as tmp:
        for clips in (int(c) for c in args.clips.split(",")):
            cache = Path(tmp) / "train.npz"
            write_cache(cache, clips, args.bins, args.frames)
            data_gib = clips * args.bins * args.frames * 4 / GIB
            for mode in ("stream", "memory"):
                rows.append({"clips": clips, "data_gib": round(data_gib, 3), **measure(cache, mode, args.seconds)})
            cache.unlink()

    print(f"UVAC training peak RSS, clips of 1×{args.bins}×{args.frames}, batch 64")
    print(f"{'clips':>7}{'data GiB':>10}{'mode':>8}{'peak RSS GiB':>14}{'clips read':>12}{'s':>7}")
    for r in rows:
        print(f"{r['clips']:>7}{r['data_gib']:>10.2f}{r['mode']:>8}{r['peak_rss_gib']:>14.2f}{str(r['clips_read']):>12}"
              f"{r['seconds']:>7}")
    stream = [r for r in rows if r["mode"] == "stream"]
    growth = stream[-1]["peak_rss_gib"] - stream[0]["peak_rss_gib"]
    report = {"benchmark": "train_memory", "bins": args.bins, "frames": args.frames, "rows": rows,
              "stream_growth_gib": growth,
              "targets": [{"target": f"streamed training peak RSS < {args.limit_gib} GiB at "
                                     f"{stream[-1]['clips']}×1×{args.bins}×{args.frames}",
                           "figure": f"{stream[-1]['peak_rss_gib']:.2f} GiB",
                           "met": stream[-1]["peak_rss_gib"] < args.limit_gib}]}
    if len(stream) > 1:
        print(f"streamed peak RSS grows {growth:.3f} GiB from {stream[0]['clips']} to {stream[-1]['clips']} clips "
              f"({stream[-1]['data_gib'] - stream[0]['data_gib']:.2f} GiB more data)")
    write_report(args.out or f"results/benchmarks/train_memory_{args.bins}x{args.frames}.json", report)
    return report


if __name__ == "__main__":
    main()
