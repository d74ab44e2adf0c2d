"""A smoke-scale `dvc repro` of the whole DAG in a scratch git clone: tables, figures, metrics,
a no-op second repro, params diff, a param edit that re-runs only its dependents, and results
pushed to a local remote and pulled into a fresh clone."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO, job_counts

BIN = str(Path(sys.executable).parent)


def run(cwd, *cmd, check=True):
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    assert not check or proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-6000:]}"
    return out


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The tracked files of the repository in a scratch git repo, with the smoke overlay as the demo."""
    root = tmp_path_factory.mktemp("dvc") / "proj"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True).stdout.split("\0")
    for name in filter(None, files):
        src = REPO / name
        if name.startswith("tests/") or not (src.exists() or src.is_symlink()):
            continue
        dest = root / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            dest.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, dest)
    shutil.copy(root / "config/smoke.yaml", root / "config/demo.yaml")
    run(root, "git", "init", "-q")
    run(root, "git", "add", "-A")
    run(root, "git", "commit", "-qm", "smoke")
    out = run(root, "dvc", "repro")
    return root, out


def test_dvc_repro_builds_every_table_and_figure(project):
    root, out = project
    for table in ("table1", "table2", "table3"):
        df = pd.read_csv(root / f"results/{table}.csv")
        assert (df["data"] == "synthetic stand-in").all(), table
        assert (root / f"results/{table}.md").read_text().startswith("# ")
    t1 = pd.read_csv(root / "results/table1.csv").set_index("method")
    assert list(t1.index) == ["labels", "kmeans", "gmm_em", "uvac", "uvac_pretrain"]
    assert t1.loc["labels", "accuracy_mean"] == 100.0 and t1.loc["uvac", "accuracy_published"] == 70.78
    assert set(pd.read_csv(root / "results/table2.csv")["space"]) == {"input", "z", "q(y|x)"}
    figures = {p.relative_to(root / "results/figures").as_posix() for p in (root / "results/figures").rglob("*.png")}
    assert {"uvac_fig3_tsne.png", "linear_vae_fig1_latent_vs_pca.png", "gumbel_softmax.png",
            "curves/synth_digits/cat_uvac_k10.png", "curves/synth_music/linear_vae_k5.png"} <= figures
    metrics = run(root, "dvc", "metrics", "show")
    assert "synth_digits.k10.kmeans.accuracy" in metrics or "accuracy" in metrics
    record = run(root, str(Path(BIN) / "uvac"), "provenance", "results/figures/uvac_fig3_tsne.png")
    assert "synth_digits" in record and "git " in record


def test_second_repro_does_nothing(project):
    root, _ = project
    out = run(root, "dvc", "repro")
    assert "Running stage" not in out, out
    assert "up to date" in run(root, "dvc", "status")


def test_one_param_reruns_only_its_dependents(project):
    """Snakemake's own dry run after changing Categorical UVAC's lambda: one run, its score,
    table2 and its training curves; nothing else."""
    root, _ = project
    changed = yaml.safe_load((root / "config/demo.yaml").read_text())
    changed["methods"]["cat_uvac"]["lam"] = 1.0
    overlay = root / "changed.yaml"
    overlay.write_text(yaml.safe_dump(changed))  # keys sorted, unlike demo.yaml: order must not matter
    out = run(root, "snakemake", "-n", "--cores", "1", "--configfile", str(overlay))
    assert job_counts(out) == {"train": 1, "evaluate": 1, "table": 1, "curves_figure": 1, "all": 1}, out
    assert "results/runs/synth_digits/cat_uvac/k10/seed0/model.pt" in out and "results/table2.csv" in out
    (root / "config/demo.yaml").write_text(yaml.safe_dump(changed, sort_keys=False))
    diff = run(root, "dvc", "params", "diff")
    assert "methods.cat_uvac.lam" in diff
    run(root, "git", "checkout", "config/demo.yaml")


def test_push_to_a_local_remote_and_pull_into_a_fresh_clone(project, tmp_path):
    root, _ = project
    run(root, "dvc", "remote", "add", "-f", "-d", "local", str(tmp_path / "remote"))
    run(root, "dvc", "push")
    run(root, "git", "add", "dvc.lock", ".dvc/config")
    run(root, "git", "commit", "-qm", "results")
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(root), str(clone))
    run(clone, "dvc", "pull")
    for path in ("results/table2.csv", "results/figures/gumbel_softmax.png", "data/features/synth_digits/test.npz"):
        assert (clone / path).read_bytes() == (root / path).read_bytes(), path
    assert "up to date" in run(clone, "dvc", "status")
