"""UVAC training throughput: clips per second at batch 64 (or --batch) on the paper input (1, 128, 99),
against a naive reference measured in the same run, and against the machine's matmul rate.

- ours: the real loop (uvac.training.train) on random clips, steady-state epochs (the first
  epoch is warm-up and dropped);
- naive: what a researcher writes first — a torch Dataset returning one clip at a time, a default
  DataLoader (the same batch, shuffle), float32, torch's default threads, the same model and loss;
- utilisation: FLOPs of one training step (torch.utils.flop_counter) × steps per second, divided
  by the FLOP/s of a dense float32 matmul timed on the same device in the same run.

The loops alternate (ours, naive, ours, naive, ...) so that load on a shared machine hits
all; the medians are compared. On CUDA, ours also runs with bfloat16 autocast and compiled
(train.compile: CUDA graphs); the compiled loop's first epoch, which compiles, is reported apart.
`--model cat_uvac` measures Categorical UVAC (the paper's loss, tau annealed each epoch) instead.
Prints a table and writes results/benchmarks/train_throughput.json.

    python benchmarks/train_throughput.py [--device auto|cpu|cuda] [--model uvac|cat_uvac] [--clips N]
                                          [--batch N] [--rounds N]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

from uvac.models import MODELS
from uvac.training import TrainConfig, resolve_device, train

from common import write_report  # noqa: E402  (benchmarks/common.py)

SHAPE = (1, 128, 99)
BATCH = 64
LOSS = {"recon": "bce", "logvar_clamp": (-10.0, 10.0), "kl_weight": 1.0}


def data(clips: int):
    rng = np.random.default_rng(0)
    x = rng.random((clips, *SHAPE), dtype=np.float32)
    mask = np.ones((clips, SHAPE[2]), np.float32)
    mask[::3, 80:] = 0  # some padded tails, as in real data
    return x, mask


def new_model(kind, device):
    torch.manual_seed(0)
    return MODELS[kind](SHAPE, n_clusters=10, latent_dim=10).to(device)


def ours(kind, x, mask, device, batch: int, **settings) -> tuple[float, float]:
    """Seconds of one steady-state epoch of uvac.training.train (median of the epochs after the
    first), and of the first epoch (warm-up; for a compiled loop, the compiling)."""
    cfg = TrainConfig(epochs=3, batch_size=batch, device=device.type, progress=False, **settings)
    seconds = [row["seconds"] for row in train(new_model(kind, device), x, mask, cfg)]
    return float(np.median(seconds[1:])), seconds[0]


class OneClip(Dataset):
    def __init__(self, x, mask):
        self.x, self.mask = x, mask

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return torch.from_numpy(self.x[i]), torch.from_numpy(self.mask[i])


def naive(kind, x, mask, device, batch: int) -> float:
    """Seconds of one epoch of the textbook loop (after one warm-up epoch)."""
    model = new_model(kind, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-3)
    loader = DataLoader(OneClip(x, mask), batch_size=batch, shuffle=True)
    seconds = []
    for _ in range(2):
        t0 = time.perf_counter()
        for xb, mb in loader:
            loss = model.loss(xb.to(device), mb.to(device), **LOSS)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
    return seconds[-1]


def step_flops(kind, device, batch: int) -> int:
    """FLOPs of one training step (forward + backward), as torch counts them."""
    model = new_model(kind, device)
    x = torch.rand(batch, *SHAPE, device=device)
    mask = torch.ones(batch, SHAPE[2], device=device)
    with FlopCounterMode(display=False) as counter:
        model.loss(x, mask, **LOSS)["loss"].backward()
    return counter.get_total_flops()


def matmul_flops_per_s(device, n: int = 2048, repeats: int = 10) -> float:
    """The reference rate: a dense float32 n×n matmul on the same device and threads."""
    a, b = torch.rand(n, n, device=device), torch.rand(n, n, device=device)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n ** 3 * repeats / (time.perf_counter() - t0)


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name()
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--model", default="uvac", choices=["uvac", "cat_uvac"])
    parser.add_argument("--clips", type=int, default=0, help="clips per epoch (0 = 640 on CPU, 6400 on CUDA)")
    parser.add_argument("--batch", type=int, default=BATCH, help="clips per step (the papers': 64)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of ours and naive")
    parser.add_argument("--out", default="results/benchmarks/train_throughput.json")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    clips = args.clips or (6400 if device.type == "cuda" else 640)
    x, mask = data(clips)
    variants = {"ours": {"amp": False}}
    if device.type == "cuda":
        variants.update(ours_amp={"amp": True}, ours_compiled={"amp": False, "compile": True})
    times, first_epoch = {"naive": [], **{name: [] for name in variants}}, {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, settings in variants.items():
            steady, first = ours(args.model, x, mask, device, args.batch, **settings)
            times[name].append(steady)
            first_epoch[name].append(first)
        times["naive"].append(naive(args.model, x, mask, device, args.batch))
    flops, peak = step_flops(args.model, device, args.batch), matmul_flops_per_s(device)

    rows = []
    for name, seconds in times.items():
        per_epoch = float(np.median(seconds))
        steps_per_s = -(-clips // args.batch) / per_epoch
        rows.append({"loop": name, "clips_per_s": clips / per_epoch, "ms_per_step": 1000 / steps_per_s,
                     "epoch_seconds": seconds, "first_epoch_seconds": first_epoch.get(name),
                     "utilisation": flops * steps_per_s / peak})
    naive_rate = next(r["clips_per_s"] for r in rows if r["loop"] == "naive")
    for r in rows:
        r["speedup_vs_naive"] = r["clips_per_s"] / naive_rate
    best = max(r["speedup_vs_naive"] for r in rows if r["loop"] != "naive")

    print(f"{args.model} training, input {SHAPE}, batch {args.batch}, {clips} clips, {device_name(device)}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}")
    print(f"{'loop':<15}{'clips/s':>10}{'ms/step':>10}{'vs naive':>10}{'FLOP/s / matmul':>17}{'1st epoch s':>13}")
    for r in rows:
        first = f"{max(r['first_epoch_seconds']):.1f}" if r["first_epoch_seconds"] else "—"
        print(f"{r['loop']:<15}{r['clips_per_s']:>10.1f}{r['ms_per_step']:>10.1f}{r['speedup_vs_naive']:>9.2f}x"
              f"{r['utilisation']:>16.1%}{first:>13}")
    print(f"step: {flops / 1e9:.1f} GFLOP; dense matmul: {peak / 1e9:.1f} GFLOP/s")
    report = {"benchmark": "train_throughput", "model": args.model, "device": device.type, "device_name": device_name(device),
              "threads": torch.get_num_threads(), "torch": torch.__version__, "input_shape": list(SHAPE),
              "batch_size": args.batch, "clips": clips, "step_gflop": flops / 1e9, "matmul_gflop_per_s": peak / 1e9,
              "rows": rows,
              "targets": [{"target": "training >= 1.5x the naive DataLoader loop (CPU)" if device.type == "cpu"
                           else "training vs the naive DataLoader loop (CUDA)",
                           "figure": f"{best:.2f}x", "met": best >= 1.5 if device.type == "cpu" else None}]}
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
