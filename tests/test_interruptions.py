"""Issue 5, reliability: real Snakemake runs on tiny data, killed with SIGKILL where it hurts most
(mid-epoch, mid-checkpoint write, mid feature-cache write, mid download), then re-run; and the
same params run twice (serially and with --cores 4) giving byte-identical files.

Faults are injected from outside (psutil finds the training script under Snakemake and kills
it, or the whole Snakemake process group) or, where the moment must be exact, by a
`sitecustomize.py` put on PYTHONPATH for the Snakemake subprocess only: with a UVAC_TEST_*
variable set, it makes the n-th torch.save / numpy.savez of a process write half its bytes and
then SIGKILL that process (see HOOKS below).

One uninterrupted build (`reference`, --cores 1) is the yardstick: every interrupted and
resumed run must end with the same bytes.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch
import yaml

from conftest import REPO, folder_dataset, job_counts, write_audio, write_overlay

pytestmark = pytest.mark.slow

RUN0 = "results/runs/tiny/uvac/k2/seed0"
RUN1 = "results/runs/tiny/uvac/k2/seed1"
TABLE = ["results/tiny_table.csv", "results/tiny_table.md"]
TINY2 = "data/features/tiny2"  # a second feature build, for concurrency
EPOCHS = 4
TARGET = f"{RUN0}/metrics.json"  # the training job alone

HOOKS = r'''
"""Fault injection for tests/test_interruptions.py; inert unless a UVAC_TEST_* variable is set.

UVAC_TEST_SLOW_STEP=<s>       sleep s seconds after every Adam step (so a kill lands mid-epoch)
UVAC_TEST_KILL_IN_SAVE=<n>    the n-th torch.save of a process writes half its bytes, then SIGKILLs the process
UVAC_TEST_KILL_IN_SAVEZ=<n>   the same for numpy.savez
UVAC_TEST_HANG=1              ... but hang (for the test to kill the whole process group) instead of dying
UVAC_TEST_HOOK_LOG=<file>     one line per injected fault, written before it strikes
UVAC_TEST_TRACE=<file>        one JSON line {script, start, end} per Snakemake script process
"""
import os
import sys
import time

_ENV = {k: v for k, v in os.environ.items() if k.startswith("UVAC_TEST_")}
_START = time.time()


def _note(text):
    if "UVAC_TEST_HOOK_LOG" in _ENV:
        with open(_ENV["UVAC_TEST_HOOK_LOG"], "a") as f:
            f.write(f"{os.getpid()} {text}\n")


def _half_then_die(write_all, path, what):
    import io
    import signal
    buf = io.BytesIO()
    write_all(buf)
    data = buf.getvalue()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])
        f.flush()
        os.fsync(f.fileno())
    _note(f"{what} {os.fspath(path)} {len(data) // 2} of {len(data)} bytes")
    if "UVAC_TEST_HANG" in _ENV:
        time.sleep(600)
    os.kill(os.getpid(), signal.SIGKILL)


def _killing(orig, n, what):
    calls = [0]

    def wrapper(first, *args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            if what == "torch.save":   # torch.save(obj, f)
                _half_then_die(lambda buf: orig(first, buf, *args[1:], **kwargs), args[0], what)
            else:                      # numpy.savez(file, *arrays, **arrays)
                _half_then_die(lambda buf: orig(buf, *args, **kwargs), first, what)
        return orig(first, *args, **kwargs)
    return wrapper


def _patch_torch(torch):
    if "UVAC_TEST_KILL_IN_SAVE" in _ENV:
        torch.save = _killing(torch.save, int(_ENV["UVAC_TEST_KILL_IN_SAVE"]), "torch.save")
    if "UVAC_TEST_SLOW_STEP" in _ENV:
        import torch.optim
        pause, step = float(_ENV["UVAC_TEST_SLOW_STEP"]), torch.optim.Adam.step

        def slow_step(self, *args, **kwargs):
            out = step(self, *args, **kwargs)
            time.sleep(pause)
            return out
        torch.optim.Adam.step = slow_step


def _patch_numpy(numpy):
    if "UVAC_TEST_KILL_IN_SAVEZ" in _ENV:
        numpy.savez = _killing(numpy.savez, int(_ENV["UVAC_TEST_KILL_IN_SAVEZ"]), "numpy.savez")


_PATCHES = {"torch": _patch_torch, "numpy": _patch_numpy}

if "UVAC_TEST_TRACE" in _ENV and "/.snakemake/scripts/" in (sys.argv[0] if sys.argv else ""):
    import atexit
    import json

    def _trace():
        with open(_ENV["UVAC_TEST_TRACE"], "a") as f:
            f.write(json.dumps({"script": sys.argv[0].rsplit(".", 2)[-2], "start": _START, "end": time.time()}) + "\n")
    atexit.register(_trace)

if _ENV:
    import importlib.abc

    class _AfterImport(importlib.abc.MetaPathFinder):
        """Patch a module right after its first import, whoever imports it."""

        def find_spec(self, name, path, target=None):
            if name not in _PATCHES:
                return None
            for finder in sys.meta_path:
                if finder is not self and hasattr(finder, "find_spec"):
                    spec = finder.find_spec(name, path, target)
                    if spec is not None:
                        break
            else:
                return None
            exec_module = spec.loader.exec_module

            def exec_and_patch(module):
                exec_module(module)
                _PATCHES.pop(name)(module)
            spec.loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, _AfterImport())
'''


# --- a scratch workflow with a tiny table ------------------------------------------------------

def make_workflow(dest: Path, recordings: Path) -> Path:
    """The workflow (as conftest's bare_workflow) plus an overlay: two tiny folder datasets, a
    4-epoch UVAC checkpointed every epoch, and a one-row table of it (seed 0)."""
    dest.mkdir(parents=True)
    for item in ("Snakefile", "params.yaml", "workflow", "config", "profiles"):
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, symlinks=True)
        else:
            shutil.copy(src, dest / item)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params.update(tables={}, figures={**params["figures"], "tsne": {}, "latent_vs_pca": {}, "gumbel_softmax": None})
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    write_overlay(dest / "tiny.yaml", {
        "build": {"datasets": ["tiny", "tiny2"]},
        "datasets": {"tiny": folder_dataset(recordings), "tiny2": folder_dataset(recordings, clip_seconds=0.5)},
        "methods": {"uvac": {"epochs": EPOCHS, "batch_size": 4}},
        "train": {"checkpoint_every": 1},
        "tables": {"tiny_table": {"title": "tiny", "reference": None, "rows": [
            {"dataset": "tiny", "paper_dataset": None, "ks": [2], "methods": ["uvac"], "n_seeds": 1}]}}})
    return dest


def snakemake(wf: Path, *targets: str, cores: int = 1, env: dict | None = None, extra=()) -> tuple[int, str]:
    """Run Snakemake to completion: targets first (--configfile takes several values)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", *targets, "--cores", str(cores), *extra,
                           "--configfile", "tiny.yaml"], cwd=wf, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    return proc.returncode, proc.stdout + proc.stderr


def start_snakemake(wf: Path, env: dict, *args: str) -> subprocess.Popen:
    """Snakemake in its own process group, so that the group can be killed as a cancelled
    cluster job or a closed terminal would kill it."""
    log = open(wf / "interrupted-snakemake.log", "a")
    return subprocess.Popen([sys.executable, "-m", "snakemake", *args, "--cores", "1", "--configfile", "tiny.yaml"],
                            cwd=wf, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env},
                            start_new_session=True)


@pytest.fixture(scope="module")
def hooks(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hooks")
    (folder / "sitecustomize.py").write_text(HOOKS)
    return folder


def hook_env(hooks: Path, **variables) -> dict:
    """The environment that arms the hooks for one Snakemake run (and clears the faults log)."""
    (hooks / "faults.log").unlink(missing_ok=True)
    return {"PYTHONPATH": os.pathsep.join([str(hooks), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            "UVAC_TEST_HOOK_LOG": str(hooks / "faults.log"), **{f"UVAC_TEST_{k}": str(v) for k, v in variables.items()}}


def fault(hooks: Path, wf: Path) -> Path:
    """The half-written file of the one fault the hooks injected."""
    [line] = (hooks / "faults.log").read_text().splitlines()
    return wf / line.split()[2]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("rec")
    rng = np.random.default_rng(0)
    for label, freq in (("low", 300), ("high", 2000)):
        for i in range(6):
            write_audio(src / label / f"{i}.wav", rate=8000, seconds=float(rng.uniform(0.3, 1.2)), freq=freq + 10 * i)
    return src


@pytest.fixture(scope="module")
def reference(tmp_path_factory, recordings) -> Path:
    """The yardstick: the table (and the second feature cache) built once, uninterrupted, --cores 1."""
    wf = make_workflow(tmp_path_factory.mktemp("reference") / "wf", recordings)
    rc, out = snakemake(wf, *TABLE, TINY2)
    assert rc == 0, out
    return wf


@pytest.fixture(scope="module")
def parallel(tmp_path_factory, recordings, hooks) -> tuple[Path, list[dict]]:
    """The same build from raw audio in a second scratch copy with --cores 4, plus the seed-1
    training; every script process's lifetime is traced. Interim and features get 2 threads (so
    two feature builds fit side by side). Trainings use train.threads torch threads whatever --cores
    is: a training's floats depend on its CPU thread count."""
    wf = make_workflow(tmp_path_factory.mktemp("parallel") / "wf", recordings)
    trace = wf.parent / "trace.jsonl"
    rc, out = snakemake(wf, *TABLE, TINY2, f"{RUN1}/metrics.json", cores=4, env=hook_env(hooks, TRACE=trace),
                        extra=["--set-threads", "interim=2", "features=2"])
    assert rc == 0, out
    return wf, [json.loads(line) for line in trace.read_text().splitlines()]


def fork(reference: Path, dest: Path) -> Path:
    """A copy of the reference workflow with its data (mtimes kept) but no results: runs start afresh."""
    shutil.copytree(reference, dest, symlinks=True, ignore=shutil.ignore_patterns("results", "logs", "locks"))
    return dest


# --- checks ------------------------------------------------------------------------------------

def open_file(path: Path):
    """Open a file with the reader its kind needs; raise if it is truncated or corrupt."""
    if path.suffix == ".pt":
        return torch.load(path, weights_only=True)
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        return pd.read_csv(path)
    if path.suffix == ".npy":
        return np.load(path)
    return path.read_bytes()


def assert_final_names_complete(root: Path) -> list[Path]:
    """Every file under a final name (not a `.tmp-` temp) opens; returns the temps found."""
    temps = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.startswith(".tmp-"):
            temps.append(path)
            continue
        try:
            open_file(path)
        except Exception as exc:  # noqa: BLE001 - any failure to open is the finding
            raise AssertionError(f"{path} sits under its final name but does not open: {exc!r}") from exc
    return temps


def trainer_of(snakemake_pid: int) -> psutil.Process:
    """The Python process running the train rule's script, a child of Snakemake."""
    children = psutil.Process(snakemake_pid).children(recursive=True)
    found = [p for p in children if any(arg.endswith(".train.py") for arg in p.cmdline())]
    assert len(found) == 1, [p.cmdline() for p in children]
    return found[0]


def wait_until(condition, proc: subprocess.Popen, what: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, f"snakemake exited ({proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.02)


def inode(path: Path) -> int | None:
    """Each atomic write of a checkpoint renames a new file onto its name: a new inode."""
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None


def wait_gone(process: psutil.Process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"{process} still alive"
        time.sleep(0.05)


def unlock_after_group_kill(wf: Path, target: str) -> None:
    """A SIGKILLed Snakemake leaves its lock: the re-run is refused until `--unlock`."""
    rc, out = snakemake(wf, target)
    assert rc != 0 and "LockException" in out and "--unlock" in out, out
    rc, out = snakemake(wf, extra=["--unlock"])
    assert rc == 0, out


def trained_epochs(wf: Path) -> list[int]:
    log = (wf / "logs/train/tiny/uvac/k2/seed0.log").read_text()
    return [int(e) for e in re.findall(rf"uvac epoch (\d+)/{EPOCHS}:", log)]


def assert_run_matches(run: Path, ref: Path) -> None:
    """A resumed run ends with the reference run's bytes (metrics) and arrays (weights, embeddings)."""
    assert (run / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()
    got, want = open_file(run / "embeddings.npz"), open_file(ref / "embeddings.npz")
    assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    for name in ("model.pt", "checkpoint.pt"):
        got, want = torch.load(run / name, weights_only=True), torch.load(ref / name, weights_only=True)
        assert got["model"].keys() == want["model"].keys()
        assert all(torch.equal(got["model"][k], want["model"][k]) for k in want["model"]), name
    untimed = [[{k: v for k, v in row.items() if k != "seconds"} for row in open_file(d / "history.jsonl")]
               for d in (run, ref)]
    assert untimed[0] == untimed[1]
    assert len(pd.read_csv(run / "history.csv")) == EPOCHS
    assert not list(run.glob(".tmp-*"))


# --- 1. SIGKILL mid-epoch ------------------------------------------------------------------------

def test_training_killed_mid_epoch_twice_resumes_from_its_last_checkpoints(reference, hooks, tmp_path):
    """Kill the training script mid-epoch just after checkpoint 1 (Snakemake exits by itself);
    re-run and kill Snakemake's whole process group mid-epoch just after checkpoint 2; re-run
    (after the `--unlock` a killed Snakemake needs): each run trains only the epochs after the
    last checkpoint, nothing incomplete sits under a final name, and the run ends with the
    reference's bytes."""
    wf = fork(reference, tmp_path / "wf")
    run, ckpt = wf / RUN0, wf / RUN0 / "checkpoint.pt"
    states = []
    for victim in ("trainer", "snakemake group"):
        before, old = (states[-1]["epoch"] if states else 0), inode(ckpt)
        proc = start_snakemake(wf, hook_env(hooks, SLOW_STEP=0.4), TARGET)  # 2 steps: an epoch lasts > 0.8 s
        try:
            wait_until(lambda: inode(ckpt) not in (None, old), proc, f"checkpoint {before + 1}")
            trainer = trainer_of(proc.pid)
            if victim == "trainer":
                trainer.kill()
                assert proc.wait(120) != 0  # Snakemake sees its job die and stops by itself
            else:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
            wait_gone(trainer)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)

        assert_final_names_complete(run)  # nothing truncated under a final name
        state = torch.load(ckpt, weights_only=True)  # a whole checkpoint of an epoch before the kill
        assert before < state["epoch"] < EPOCHS and len(state["history"]) == state["epoch"]
        assert trained_epochs(wf) == list(range(before + 1, state["epoch"] + 1)) or \
            trained_epochs(wf)[:-1] == list(range(before + 1, state["epoch"] + 1))  # the killed epoch may have logged
        for name in ("model.pt", "embeddings.npz", "metrics.json"):
            assert not (run / name).exists(), name
        if victim == "trainer":  # Snakemake removed the failed job's outputs, history.csv among them
            assert not (run / "history.csv").exists()
        else:  # a killed Snakemake leaves whole rows, and its marker says the job is incomplete
            assert len(pd.read_csv(run / "history.csv")) in (state["epoch"], state["epoch"] + 1)
            assert any((wf / ".snakemake/incomplete").iterdir())
            unlock_after_group_kill(wf, TARGET)
        states.append(state)

    # the plain re-run (the default profile sets rerun-incomplete) resumes after the last checkpoint
    rc, out = snakemake(wf, TARGET)
    assert rc == 0, out
    assert trained_epochs(wf) == list(range(states[-1]["epoch"] + 1, EPOCHS + 1))
    history = open_file(run / "history.jsonl")
    for state in states:  # the same rows, wall times included: epochs before a kill were not retrained
        assert history[:state["epoch"]] == state["history"]
    assert_run_matches(run, reference / RUN0)


# --- 2. SIGKILL inside torch.save ----------------------------------------------------------------

def test_kill_while_writing_checkpoint_or_model_keeps_whole_files(reference, hooks, tmp_path):
    """The 2nd torch.save of the training (the checkpoint of epoch 2) writes half its bytes and the
    process dies; the re-run dies the same way in its 4th save (model.pt, after epochs 2-4). Each
    time the final names hold only whole files (checkpoint.pt the previous one), the half file sits
    under its temp name until the next write of that path removes it, and a last re-run ends with
    the reference's bytes."""
    wf = fork(reference, tmp_path / "wf")
    run = wf / RUN0

    rc, out = snakemake(wf, TARGET, env=hook_env(hooks, KILL_IN_SAVE=2))
    assert rc != 0 and "SIGKILL" in out, out
    half_ckpt = fault(hooks, wf)
    assert half_ckpt.parent == run and half_ckpt.name.endswith("-checkpoint.pt")
    with pytest.raises(Exception):
        torch.load(half_ckpt, weights_only=True)  # the fault was real: that file is truncated
    assert assert_final_names_complete(run) == [half_ckpt]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1
    assert trained_epochs(wf) == [1, 2]

    rc, out = snakemake(wf, TARGET, env=hook_env(hooks, KILL_IN_SAVE=EPOCHS))  # saves: checkpoints 2-4, model.pt
    assert rc != 0 and "SIGKILL" in out, out
    half_model = fault(hooks, wf)
    assert half_model.parent == run and half_model.name.endswith("-model.pt")
    assert assert_final_names_complete(run) == [half_model]  # the stale checkpoint temp is gone
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == EPOCHS
    assert trained_epochs(wf) == list(range(2, EPOCHS + 1))
    assert not (run / "model.pt").exists() and not (run / "history.csv").exists()  # Snakemake removed history.csv

    rc, out = snakemake(wf, TARGET)  # resumes from the final checkpoint and rewrites history.csv
    assert rc == 0, out
    assert trained_epochs(wf) == []  # everything was in the checkpoint
    assert not half_model.exists()
    assert_run_matches(run, reference / RUN0)


def test_atomic_path_removes_leftovers_of_killed_writers_only(tmp_path):
    """uvac.io.atomic_path's leftover rule: a dead writer's temp of the same name goes (old-style
    names too, and another host's); a live writer's, and the temps of other names, stay."""
    from uvac.io import temp_path, write_json

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        target = tmp_path / "metrics.json"
        mine = temp_path(target)
        host = mine.name.split("-")[2]
        gone = [tmp_path / f".tmp-uvac-{host}-{dead_pid}-metrics.json", tmp_path / f".tmp-{dead_pid}-metrics.json",
                tmp_path / ".tmp-uvac-otherhost-1-metrics.json"]
        kept = [tmp_path / f".tmp-uvac-{host}-{live.pid}-metrics.json", tmp_path / f".tmp-uvac-{host}-{dead_pid}-scores.json",
                tmp_path / f".tmp-uvac-{host}-{dead_pid}-xmetrics.json", tmp_path / ".tmp-report-5"]
        for path in gone + kept:
            path.write_text("{half")
        write_json(target, {"ok": 1})
        assert json.loads(target.read_text()) == {"ok": 1}
        assert not any(p.exists() for p in gone) and all(p.exists() for p in kept)
        assert mine.name == f".tmp-uvac-{host}-{os.getpid()}-metrics.json" and not mine.exists()
    finally:
        live.kill()
        live.wait()


# --- 3. a feature build killed half-way ----------------------------------------------------------

def test_feature_build_killed_half_way_is_rebuilt_whole(reference, hooks, tmp_path):
    """numpy.savez of the second split (train.npz) writes half its bytes, then the features script
    dies; in a second try it hangs there while the test kills Snakemake's whole process group.
    No truncated NPZ/Parquet under a final name, no manifest; the re-run rebuilds the cache with
    the reference's arrays."""
    wf = fork(reference, tmp_path / "wf")
    feats = wf / "data/features/tiny"

    rc, out = snakemake(wf, "data/features/tiny", env=hook_env(hooks, KILL_IN_SAVEZ=2), extra=["--forcerun", "features"])
    assert rc != 0 and "SIGKILL" in out, out
    assert fault(hooks, wf).name.endswith("-train.npz")
    assert not feats.exists()  # Snakemake removed the failed job's output directory, half file and all
    assert assert_final_names_complete(wf / "data") == []

    proc = start_snakemake(wf, hook_env(hooks, KILL_IN_SAVEZ=2, HANG=1), "data/features/tiny")
    try:
        wait_until((hooks / "faults.log").exists, proc, "the half-written train.npz")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    half = fault(hooks, wf)
    assert half.parent == feats and half.name.endswith("-train.npz")
    assert sorted(p.name for p in feats.iterdir()) == sorted(["test.npz", half.name])  # no manifest: incomplete
    assert assert_final_names_complete(wf / "data") == [half]

    unlock_after_group_kill(wf, "data/features/tiny")
    rc, out = snakemake(wf, "data/features/tiny")
    assert rc == 0, out
    assert assert_final_names_complete(wf / "data") == []
    assert_same_features(feats, reference / "data/features/tiny")


def assert_same_features(got: Path, want: Path) -> None:
    """The same files (Snakemake's .snakemake_timestamp aside) holding the same arrays and tables."""
    names = sorted(p.name for p in want.iterdir() if not p.name.startswith("."))
    assert sorted(p.name for p in got.iterdir() if not p.name.startswith(".")) == names
    for name in names:
        a, b = open_file(got / name), open_file(want / name)
        if name.endswith(".npz"):
            assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in b), name
        elif name.endswith(".parquet"):
            pd.testing.assert_frame_equal(a, b)
        else:  # summary.json: its build time aside
            assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


# --- 3b. a download killed half-way ----------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 2048 + b"end"  # 512 KiB + 3 bytes


class _SlowHandler(BaseHTTPRequestHandler):
    """Serves PAYLOAD with Range support; the first transfer crawls (16 KiB every 0.2 s)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):
        srv = self.server
        srv.ranges.append(self.headers.get("Range"))
        start = int(re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "bytes=0-").group(1))
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body)))
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.end_headers()
        slow = len(srv.ranges) == 1
        try:
            for i in range(0, len(body), 16384):
                self.wfile.write(body[i:i + 16384])
                self.wfile.flush()
                if slow:
                    time.sleep(0.2)
        except OSError:
            pass  # the client was killed

    def log_message(self, *args):
        pass


def test_download_killed_mid_transfer_resumes_from_the_part_file(tmp_path):
    """A process running uvac.download.fetch is SIGKILLed mid-transfer; the next fetch asks the
    server only for the missing bytes (Range: bytes=<bytes on disk>-) and verifies the checksum."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _SlowHandler)
    srv.ranges = []
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    url, dest = f"http://127.0.0.1:{srv.server_address[1]}/data.bin", tmp_path / "data.bin"
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    call = (f"from uvac.download import fetch; fetch([{url!r}], {str(dest)!r}, size={len(PAYLOAD)}, "
            f"sha256={sha!r}, retries=1, progress=False)")
    try:
        child = subprocess.Popen([sys.executable, "-c", call])
        part = tmp_path / "data.bin.part"
        deadline = time.monotonic() + 60
        while not (part.exists() and part.stat().st_size >= 65536):
            assert child.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
        have = part.stat().st_size
        assert 0 < have < len(PAYLOAD) and not dest.exists()

        from uvac.download import fetch
        assert fetch([url], dest, size=len(PAYLOAD), sha256=sha, retries=1, progress=False) == dest
        assert srv.ranges == [None, f"bytes={have}-"]
        assert dest.read_bytes() == PAYLOAD and not part.exists()
    finally:
        srv.shutdown()
        srv.server_close()


# --- 4. determinism ------------------------------------------------------------------------------

TIME_KEYS = re.compile(r"second|time|duration|elapsed|date", re.I)


def test_same_params_and_seed_give_byte_identical_files(reference, parallel):
    """Two scratch copies, the same params and seeds, each built from raw audio (one with --cores 1,
    one with --cores 4: jobs side by side, 2 decoding/feature workers): metrics.json, scores.json
    and the table files are byte-identical; feature caches, weights and embeddings hold the same arrays."""
    wf, _ = parallel
    for name in (f"{RUN0}/metrics.json", f"{RUN0}/scores.json", *TABLE, "results/metrics/tiny_table.json"):
        assert (wf / name).read_bytes() == (reference / name).read_bytes(), name
        if name.endswith(".json"):  # no wall time in a file that must match byte for byte
            keys = re.findall(r'"([^"]+)":', (wf / name).read_text())
            assert keys and not [k for k in keys if TIME_KEYS.search(k)], keys
    for dataset in ("tiny", "tiny2"):
        assert_same_features(wf / f"data/features/{dataset}", reference / f"data/features/{dataset}")
    a, b = open_file(wf / RUN0 / "embeddings.npz"), open_file(reference / RUN0 / "embeddings.npz")
    assert all(np.array_equal(a[k], b[k]) for k in b)
    a, b = (torch.load(d / RUN0 / "model.pt", weights_only=True)["model"] for d in (wf, reference))
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_another_seed_gives_other_numbers(parallel):
    wf, _ = parallel
    z0, z1 = (open_file(wf / run / "embeddings.npz")["z"] for run in (RUN0, RUN1))
    assert z0.shape == z1.shape and not np.allclose(z0, z1)
    w0, w1 = (torch.load(wf / run / "model.pt", weights_only=True)["model"] for run in (RUN0, RUN1))
    assert not any(torch.equal(w0[k], w1[k]) for k in w0 if w0[k].numel() > 1)
    h0, h1 = (open_file(wf / run / "history.jsonl") for run in (RUN0, RUN1))
    assert [r["loss"] for r in h0] != [r["loss"] for r in h1]


# --- 5. concurrency ------------------------------------------------------------------------------

def test_parallel_build_ran_jobs_side_by_side(parallel):
    """The --cores 4 build whose files match the serial one (above) did run jobs at the same time,
    the two trainings among them."""
    _, trace = parallel
    assert sorted(t["script"] for t in trace) == sorted(
        ["raw"] * 2 + ["interim"] * 2 + ["features"] * 2 + ["train"] * 2 + ["evaluate", "table"]), trace

    def together(a, b):
        return a is not b and a["start"] < b["end"] and b["start"] < a["end"]
    assert any(together(a, b) for a in trace for b in trace if a["script"] == "train"), trace
    assert max(sum(t["start"] <= s["start"] < t["end"] for t in trace) for s in trace) >= 2, trace


def test_no_two_jobs_write_the_same_file(workflow_copy):
    """In the paper DAG (511 jobs, every rule) each output, log and benchmark belongs to one job,
    no job writes inside another's directory output, and a run directory (where a training also
    writes checkpoint.pt, history.jsonl and atomic_path temps) is shared only by its fit and the
    evaluate job that waits for it."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--forceall"], cwd=workflow_copy,
                          capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    jobs = []
    for block in re.split(r"\n(?:local)?rule ", out)[1:]:
        fields = dict(re.findall(r"^    (input|output|log|benchmark): (.*)$", block, re.M))
        jobs.append({"rule": block.split(":", 1)[0], **{k: v.split(", ") for k, v in fields.items()}})
    assert len(jobs) == sum(job_counts(out).values()) == 511
    owner = {}
    for i, job in enumerate(jobs):
        for path in job.get("output", []) + job.get("log", []) + job.get("benchmark", []):
            assert path not in owner, f"{path}: written by {jobs[owner[path]]['rule']} and {job['rule']}"
            owner[path] = i
    directories = {p: i for i, j in enumerate(jobs) for p in j.get("output", [])
                   if j["rule"] == "features" or p.endswith("/waves")}
    for path, i in owner.items():
        assert not any(path.startswith(d + "/") and i != j for d, j in directories.items()), path
    run_dirs = {}
    for i, job in enumerate(jobs):
        for path in job.get("output", []):
            if path.startswith("results/runs/"):
                run_dirs.setdefault(str(Path(path).parent), set()).add(i)
    assert len(run_dirs) == 240
    for run_dir, users in run_dirs.items():
        rules = sorted(jobs[i]["rule"] for i in users)
        assert rules in (["evaluate", "train"], ["baseline", "evaluate"]), (run_dir, rules)
        [evaluate] = [i for i in users if jobs[i]["rule"] == "evaluate"]
        assert f"{run_dir}/embeddings.npz" in jobs[evaluate]["input"]  # it waits for the fit
