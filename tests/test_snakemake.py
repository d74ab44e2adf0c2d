"""Real Snakemake runs on tiny data: the DAG, a full build, no-op re-runs, and param-driven reruns."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import folder_dataset, job_counts, write_audio, write_overlay

REPO = Path(__file__).resolve().parents[1]
ALL = ["synth_digits", "synth_scenes", "synth_music", "fsdd", "audiomnist", "urbansound8k",
       "tau2019", "gtzan", "esc50", "esc10"]


def snakemake(cwd, *args):
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", *args],
                          cwd=cwd, capture_output=True, text=True)
    return proc.returncode, proc.stdout + proc.stderr


def test_dry_run_lists_every_dataset(bare_workflow, tmp_path):
    overlay = write_overlay(tmp_path / "all.yaml", {"build": {"datasets": ALL}})
    rc, out = snakemake(bare_workflow, "-n", "--configfile", str(overlay))
    assert rc == 0, out
    assert job_counts(out) == {"raw": 10, "interim": 10, "features": 10, "all": 1}
    for name in ALL:
        assert f"data/features/{name}" in out


def test_paper_dag_trains_every_experiment(workflow_copy):
    """params.yaml as shipped: 4 datasets; 3x10 AudioMNIST runs, 2x2x10 for TAU and US8K, 10 GTZAN."""
    rc, out = snakemake(workflow_copy, "-n")
    assert rc == 0, out
    assert job_counts(out) == {"raw": 4, "interim": 4, "features": 4, "train": 120, "baseline": 120,
                               "evaluate": 240, "table": 3, "tsne_figure": 1, "latent_vs_pca_figure": 1,
                               "gumbel_softmax_figure": 1, "curves_figure": 12, "all": 1}
    assert "results/runs/tau2019/cat_uvac_l2/k5/seed9/metrics.json" in out
    assert "results/runs/audiomnist/gmm_em/k10/seed9/scores.json" in out


@pytest.fixture
def tiny(bare_workflow, tmp_path):
    src = tmp_path / "rec"
    rng = np.random.default_rng(0)
    for label, freq in (("low", 300), ("high", 2000)):
        for i in range(6):
            write_audio(src / label / f"{i}.wav", rate=8000, seconds=float(rng.uniform(0.3, 1.2)), freq=freq + 10 * i)
    cfg = folder_dataset(src)
    overlay = write_overlay(tmp_path / "tiny.yaml", {"build": {"datasets": ["tiny"]}, "datasets": {"tiny": cfg}})
    return bare_workflow, overlay, cfg


def test_full_build_then_noop_then_only_dependents_rerun(tiny, tmp_path):
    wf, overlay, cfg = tiny
    rc, out = snakemake(wf, "--configfile", str(overlay))
    assert rc == 0, out
    assert sorted(p.name for p in (wf / "data/features/tiny").iterdir() if not p.name.startswith(".")) == [
        "manifest.parquet", "summary.json", "test.npz", "train.npz", "val.npz"]
    for stage in ("raw", "interim", "features"):
        assert (wf / f"logs/{stage}/tiny.log").stat().st_size > 0
        assert (wf / f"logs/benchmarks/{stage}/tiny.tsv").exists()
    assert "12 clips from 12 files, 0 rejected" in (wf / "logs/interim/tiny.log").read_text()

    rc, out = snakemake(wf, "-n", "--configfile", str(overlay))
    assert rc == 0 and "Nothing to be done" in out, out

    # a feature param re-runs the features only; decoded audio is reused
    cfg["normalize"] = "dataset"
    changed = write_overlay(tmp_path / "changed.yaml", {"build": {"datasets": ["tiny"]}, "datasets": {"tiny": cfg}})
    rc, out = snakemake(wf, "-n", "--configfile", str(changed))
    assert rc == 0 and job_counts(out) == {"features": 1, "all": 1}, out

    # the clip length changes the decoded clips, so interim and features re-run, not the raw stage
    cfg["clip_seconds"] = 0.5
    changed = write_overlay(tmp_path / "changed.yaml", {"build": {"datasets": ["tiny"]}, "datasets": {"tiny": cfg}})
    rc, out = snakemake(wf, "-n", "--configfile", str(changed))
    assert rc == 0 and job_counts(out) == {"interim": 1, "features": 1, "all": 1}, out


def test_missing_download_fails_with_one_clear_message(bare_workflow, tmp_path):
    """Offline and without `source:`, the raw stage names the URL, the file and the param to set."""
    overlay = write_overlay(tmp_path / "esc.yaml", {"build": {"datasets": ["esc50"]}, "download": {"retries": 1}})
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1",
                           "data/raw/esc50/source.json", "--configfile", str(overlay)], cwd=bare_workflow, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "https_proxy": "http://127.0.0.1:9",
                               "http_proxy": "http://127.0.0.1:9"})
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "datasets.esc50.source" in out and "ESC-50" in out and "https://github.com/karolpiczak/ESC-50" in out
    assert "Traceback" not in out


def test_train_rule_writes_a_complete_run(tiny, tmp_path):
    """Snakemake trains a method variant on a real feature cache into results/runs/…/seed0/."""
    import json

    import torch

    from uvac.estimators import UVAC

    wf, _, cfg = tiny
    overlay = write_overlay(tmp_path / "train.yaml", {
        "build": {"datasets": ["tiny"]}, "datasets": {"tiny": cfg},
        "methods": {"uvac": {"epochs": 2, "batch_size": 4}},
        "train": {"checkpoint_every": 1}})
    run = wf / "results/runs/tiny/uvac/k2/seed0"
    rc, out = snakemake(wf, f"{run.relative_to(wf)}/metrics.json", "--configfile", str(overlay))
    assert rc == 0, out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["k"] == 2 and metrics["epochs"] == 2 and 1 <= metrics["clusters_used"] <= 2
    assert 0 <= metrics["accuracy"] <= 1 and metrics["n_test"] == 2
    assert len((run / "history.csv").read_text().splitlines()) == 1 + 2
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 2
    est = UVAC.load(run / "model.pt", n_clusters=2, input_shape=(1, 128, 99))
    with np.load(run / "embeddings.npz") as emb:
        assert emb["z"].shape == (2, 10) and emb["proba"].shape == (2, 2)
        assert np.isclose(emb["proba"].sum(axis=1), 1, atol=1e-5).all()
        assert est.predict(np.zeros((1, 1, 128, 99), np.float32)).shape == (1,)
    assert "uvac epoch 2/2" in (wf / "logs/train/tiny/uvac/k2/seed0.log").read_text()
    # the linear probe reads the run's saved model back and embeds both splits: z and the 2 responsibilities
    probe = subprocess.run([sys.executable, str(REPO / "benchmarks/linear_probe.py"), "data/features/tiny", str(run),
                            "--input-components", "4", "--out", str(tmp_path / "probe.json")],
                           cwd=wf, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    rows = json.loads((tmp_path / "probe.json").read_text())["rows"]
    assert rows[0]["probe_accuracy"] == 1.0  # a 300 Hz tone from a 2 kHz one, linearly
    assert rows[1]["dims"] == 10 + 2 and rows[1]["clustering_accuracy"] == metrics["accuracy"]
    assert rows[1]["probe_accuracy"] in (0.0, 0.5, 1.0)  # two test clips
    rc, out = snakemake(wf, "-n", f"{run.relative_to(wf)}/metrics.json", "--configfile", str(overlay))
    assert rc == 0 and "Nothing to be done" in out, out


def test_the_pretext_methods_of_a_seed_share_one_pretext_embedding(tiny, tmp_path):
    """Rule pretext makes the contrastive encoder's embedding once; both pretext methods read it, and a
    method's own pretext_epochs or pretext_batch_size gives it (and only it) an embedding of its own."""
    wf, _, cfg = tiny
    small = {"epochs": 1, "batch_size": 4, "pretext_epochs": 1, "neighbour_count": 2, "speaker_centred": False,
             "cluster_init_epochs": 1}
    methods = {"uvac_pretext_speakers": {**small, "pretrain_epochs": 1, "kl_warmup_epochs": 0},
               "cat_uvac_pretext_speakers": small}
    overlay = write_overlay(tmp_path / "pretext.yaml", {"build": {"datasets": ["tiny"]}, "datasets": {"tiny": cfg},
                                                        "methods": methods})
    targets = [f"results/runs/tiny/{m}/k2/seed0/metrics.json" for m in methods]
    rc, out = snakemake(wf, "-n", *targets, "--configfile", str(overlay))
    assert rc == 0 and job_counts(out) == {"raw": 1, "interim": 1, "features": 1, "pretext": 1, "train": 2}, out
    rc, out = snakemake(wf, *targets, "--configfile", str(overlay))
    assert rc == 0, out
    with np.load(wf / "results/runs/tiny/pretext_e1_b256_seed0.npz") as made, \
            np.load(wf / "data/features/tiny/train.npz") as train:
        assert np.array_equal(made["clip_id"], train["clip_id"]) and made["embedding"].shape[0] == len(train["x"])
    assert "pretext encoder: 1 epochs" in (wf / "logs/pretext/tiny/e1_b256_seed0.log").read_text()
    for m in methods:
        log_text = (wf / f"logs/train/tiny/{m}/k2/seed0.log").read_text()
        assert "cluster initialisation epoch 1/1" in log_text and "pretext encoder" not in log_text

    for setting, made in (({"pretext_epochs": 2}, "pretext_e2_b256_seed0.npz"),
                          ({"pretext_batch_size": 8}, "pretext_e1_b8_seed0.npz")):
        changed = {**methods, "cat_uvac_pretext_speakers": {**small, **setting}}
        overlay = write_overlay(tmp_path / "changed.yaml", {"build": {"datasets": ["tiny"]}, "datasets": {"tiny": cfg},
                                                            "methods": changed})
        rc, out = snakemake(wf, "-n", *targets, "--configfile", str(overlay))
        assert rc == 0 and job_counts(out) == {"pretext": 1, "train": 1}, out
        jobs = out.split("\nrule ")
        assert [b for b in jobs if b.startswith("pretext:") and made in b], out
        assert [b for b in jobs if b.startswith("train:") and "method=cat_uvac_pretext_speakers" in b]


def test_slurm_profile_dry_run_resolves_every_job_with_a_gpu_per_training(workflow_copy):
    """The SLURM executor plugin is installed and the profile plans all 511 paper jobs (nothing submitted)."""
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "workflow/profiles/slurm"],
                          cwd=workflow_copy, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert sum(job_counts(out).values()) == 511
    blocks = out.split("\nrule ")
    train = [b for b in blocks if b.startswith("train:")]
    assert len(train) == 120 and all("gpu=1" in b and "cpus_per_task=8" in b for b in train)
    assert not any("gpu=1" in b for b in blocks if b.startswith("baseline:"))
