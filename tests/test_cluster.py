"""`uvac cluster` / `uvac predict` end to end on real audio files, and the HTML report in Chromium.

The toy folder holds three clearly different classes in WAV, FLAC and OGG (a low tone, a high
tone, a noise band), labelled by subfolder, and one long file cut into several 1 s clips.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from uvac import cli, html_report
from conftest import REPO

RATE = 16000
PARAMS = ["-p", str(REPO / "params.yaml")]
FAST = ["--workers", "1", "--threads", "1"]


def _sound(kind: str, seconds: float, i: int) -> np.ndarray:
    rng = np.random.default_rng(i)
    t = np.arange(int(RATE * seconds)) / RATE
    if kind == "low":
        wave = np.sin(2 * np.pi * (250 + 10 * i) * t) + 0.4 * np.sin(2 * np.pi * 2 * (250 + 10 * i) * t)
    elif kind == "high":
        wave = np.sin(2 * np.pi * (3000 + 40 * i) * t)
    else:  # noise band 5-7 kHz
        spec = np.fft.rfft(rng.normal(size=len(t)))
        freqs = np.fft.rfftfreq(len(t), 1 / RATE)
        spec[(freqs < 5000) | (freqs > 7000)] = 0
        wave = np.fft.irfft(spec, len(t))
        wave /= np.abs(wave).max()
    wave = wave / np.abs(wave).max() * (0.3 + 0.05 * i) + 0.003 * rng.normal(size=len(t))
    return wave.astype(np.float32)


FORMATS = [(".wav", {"subtype": "PCM_16"}), (".flac", {"format": "FLAC"}), (".ogg", {"format": "OGG", "subtype": "VORBIS"})]
LONG_FILE = "low/long_recording.flac"  # 3.3 s: three 1 s clips, the 0.3 s tail is not a clip


def make_toy(root: Path, per_class: int = 5) -> dict[str, float]:
    """Write the toy folder; return {relative path: duration in seconds}."""
    files = {}
    for c, kind in enumerate(("low", "high", "noise")):
        for i in range(per_class):
            suffix, kw = FORMATS[(i + c) % len(FORMATS)]
            seconds = 0.5 + 0.1 * i
            rel = f"{kind}/{kind}_{i}{suffix}"
            (root / kind).mkdir(parents=True, exist_ok=True)
            sf.write(str(root / rel), _sound(kind, seconds, i), RATE, **kw)
            files[rel] = seconds
    sf.write(str(root / LONG_FILE), _sound("low", 3.3, 7), RATE, format="FLAC")
    files[LONG_FILE] = 3.3
    return files


def run_cli(*args) -> None:
    cli.main([*PARAMS, *map(str, args)])


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("toy") / "recordings"
    return root, make_toy(root)


@pytest.fixture(scope="module")
def kmeans_run(toy, tmp_path_factory) -> Path:
    root, _ = toy
    out = tmp_path_factory.mktemp("kmeans") / "out"
    run_cli("cluster", root, "--k", 3, "--method", "kmeans", "--labels", "subfolder", "--out", out, *FAST)
    return out


def test_kmeans_end_to_end(kmeans_run, toy):
    _, files = toy
    out = kmeans_run
    for name in ("assignments.csv", "metrics.json", "model.pt", "cluster.json", "report.html", "report_files/tsne.png"):
        assert (out / name).is_file(), name
    rows = pd.read_csv(out / "assignments.csv")
    assert list(rows.columns) == ["file", "start_s", "end_s", "cluster", "probability", "label"]
    assert len(rows) == len(files) - 1 + 3  # one row per clip: the long file gives three
    assert set(rows["file"]) == set(files)
    long = rows[rows["file"] == LONG_FILE]
    assert long[["start_s", "end_s"]].to_numpy().tolist() == [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    short = rows[rows["file"] != LONG_FILE].set_index("file")
    for rel, seconds in files.items():
        if rel != LONG_FILE:
            assert short.loc[rel, "start_s"] == 0.0
            assert short.loc[rel, "end_s"] == pytest.approx(seconds, abs=1e-3)
    assert rows["probability"].isna().all()  # K-means has no posterior
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9 and metrics["nmi"] > 0.8
    assert metrics["space"] == "input" and metrics["clusters_used"] == 3 and metrics["clips"] == len(rows)
    assert metrics["silhouette"] is not None and metrics["dbi"] > 0 and metrics["chi"] > 0
    assert sum(metrics["cluster_sizes"]) == len(rows)


def test_rerun_reuses_everything(kmeans_run, toy, capsys):
    root, _ = toy
    cache = sorted(p for p in (kmeans_run / "cache").rglob("*") if p.is_file() and p.suffix in (".parquet", ".npz", ".pt"))
    before = {p: p.stat().st_mtime_ns for p in cache}
    run_cli("cluster", root, "--k", 3, "--method", "kmeans", "--labels", "subfolder", "--out", kmeans_run, *FAST)
    log = capsys.readouterr().err
    for what in ("reusing decoded clips", "reusing features", "reusing the model", "reusing the t-SNE map"):
        assert what in log, log
    assert {p: p.stat().st_mtime_ns for p in cache} == before
    assert json.loads((kmeans_run / "metrics.json").read_text())["reused"] == {
        "interim": True, "features": True, "model": True}


def test_predict_places_copies_in_their_clusters(kmeans_run, toy, tmp_path):
    root, _ = toy
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(root / "high" / "high_2.wav", new / "copy of high_2.wav")
    shutil.copy(root / LONG_FILE, new / "long copy.flac")
    sf.write(str(new / "fresh_noise.ogg"), _sound("noise", 0.8, 11), RATE, format="OGG", subtype="VORBIS")
    run_cli("predict", "--model", kmeans_run, new, "--out", tmp_path / "pred", *FAST)
    trained = pd.read_csv(kmeans_run / "assignments.csv")
    pred = pd.read_csv(tmp_path / "pred" / "assignments.csv").set_index(["file", "start_s"])
    assert len(pred) == 1 + 3 + 1
    assert pred.loc[("copy of high_2.wav", 0.0), "cluster"] == \
        trained.set_index("file").loc["high/high_2.wav", "cluster"]
    long = trained[trained["file"] == LONG_FILE]["cluster"].tolist()
    assert pred.loc["long copy.flac", "cluster"].tolist() == long
    noise = trained[trained["file"].str.startswith("noise/")]["cluster"].mode()[0]
    assert pred.loc[("fresh_noise.ogg", 0.0), "cluster"] == noise


@pytest.mark.parametrize("method, model", [(None, "uvac"), ("cat_uvac", "cat_uvac"), ("linear_vae", "linear_vae")])
def test_vae_methods_end_to_end_and_predict(method, model, toy, tmp_path):
    root, files = toy
    out = tmp_path / "out"
    chosen = ["--method", method] if method else []  # None: the default, uvac_pretrain
    run_cli("cluster", root, "--k", 3, *chosen, "--epochs", 2, "--labels", "subfolder", "--out", out,
            "--examples", 2, *FAST)
    rows = pd.read_csv(out / "assignments.csv")
    assert len(rows) == len(files) + 2 and rows["cluster"].between(0, 2).all()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["space"] == "z" and metrics["epochs"] == 2 and metrics["model"] == model
    assert metrics["method"] == (method or "uvac_pretrain")
    assert metrics["pretrain_epochs"] == (2 if method is None else None)
    assert 0 <= metrics["accuracy"] <= 1
    if model == "linear_vae":
        assert rows["probability"].isna().all()
    else:
        assert rows["probability"].between(1 / 3 - 1e-6, 1).all()
    if model == "cat_uvac":
        assert set(metrics["spaces"]) == {"z", "q(y|x)"}
    settings = json.loads((out / "cluster.json").read_text())
    assert settings["dataset"]["features"]["kind"] == ("mfcc_stats" if model == "linear_vae" else "stft")
    new = tmp_path / "new"
    new.mkdir()
    shutil.copy(root / "noise" / "noise_3.ogg", new / "n.ogg")
    run_cli("predict", "--model", out / "model.pt", new, "--out", tmp_path / "pred", *FAST)
    pred = pd.read_csv(tmp_path / "pred" / "assignments.csv")
    assert pred["cluster"].tolist() == rows.set_index("file").loc[["noise/noise_3.ogg"], "cluster"].tolist()
    if model != "linear_vae":
        expected = rows.set_index("file").loc[["noise/noise_3.ogg"], "probability"].tolist()
        assert pred["probability"].tolist() == pytest.approx(expected, abs=2e-4)


def test_interrupted_report_leaves_complete_outputs(toy, tmp_path, monkeypatch):
    root, _ = toy
    out = tmp_path / "out"
    calls = []

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    real = html_report.thumbnail
    monkeypatch.setattr(html_report, "thumbnail", lambda *a, **kw: (interrupt(), real(*a, **kw)))
    args = ["cluster", root, "--k", 3, "--method", "kmeans", "--out", out, *FAST]
    with pytest.raises(SystemExit) as exc:
        run_cli(*args)
    assert exc.value.code == 130
    assert not list(out.rglob(".tmp-*")) and not list(out.rglob(".old-*"))
    assert not (out / "report.html").exists() and not (out / "report_files").exists()
    assert len(pd.read_csv(out / "assignments.csv")) == 18  # written before the report: complete
    monkeypatch.setattr(html_report, "thumbnail", real)
    run_cli(*args)
    assert (out / "report.html").is_file() and json.loads((out / "metrics.json").read_text())["reused"]["model"]


@pytest.mark.parametrize("args, message", [
    (["--labels", "folders"], "--labels: expected subfolder, none, regex:PATTERN or csv:FILE"),
    (["--labels", "regex:^(\\d)_"], "needs a named group 'label'"),
    (["--labels", "csv:/nonexistent/labels.csv"], "not found (expected a CSV with columns file,label)"),
    (["--method", "gmm_em"], "--method: expected one of"),
    (["--k", "1"], "--k: expected a number of clusters >= 2"),
    (["--k", "99"], "--k 99: more clusters than the 18 clips"),
    (["--clip-seconds", "0.1"], "--clip-seconds 0.1: 9 frames per clip"),
    (["--model", "/nonexistent/model.pt"], "--model /nonexistent/model.pt: no such file"),
])
def test_bad_input_is_named(toy, tmp_path, capsys, args, message):
    root, _ = toy
    base = {"--k": "3", "--method": "uvac", "--out": str(tmp_path / "out")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    with pytest.raises(SystemExit) as exc:
        run_cli("cluster", root, *[x for kv in base.items() for x in kv], *FAST)
    assert exc.value.code == 1
    assert message in capsys.readouterr().err


def test_bad_dir_and_out_inside_dir(toy, tmp_path, capsys):
    root, _ = toy
    for argv, message in ((["cluster", tmp_path / "missing", "--k", 2], "not a folder"),
                          (["cluster", root, "--k", 2, "--out", root / "out"], "must not lie inside the recordings folder"),
                          (["predict", "--model", tmp_path, root], "no model file")):
        with pytest.raises(SystemExit):
            run_cli(*argv)
        assert message in capsys.readouterr().err


# --- the report in headless Chromium ---------------------------------------------------------------

@pytest.fixture(scope="session")
def chromium() -> str:
    """Debian's chromium, installed with apt-get when missing; skipped only if that is impossible."""
    exe = shutil.which("chromium")
    if exe:
        return exe
    if shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and there is no apt-get to install it (Debian package 'chromium')")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it with apt-get needs root: apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "chromium"]
    proc = subprocess.run(install, capture_output=True, text=True, env=env)
    if proc.returncode != 0:  # stale package lists: refresh once
        subprocess.run(["apt-get", "update"], capture_output=True, text=True, env=env)
        proc = subprocess.run(install, capture_output=True, text=True, env=env)
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip(f"could not install chromium with apt-get (exit {proc.returncode}): "
                    f"{(proc.stderr or proc.stdout).strip()[-500:]}")
    return exe


def _chromium(exe: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--mute-audio", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
           *extra, page.resolve().as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


class _BodyAttrs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.attrs = None

    def handle_starttag(self, tag, attrs):
        if tag == "body" and self.attrs is None:
            self.attrs = dict(attrs)


def page_check(exe: str, page: Path, profile: Path) -> dict:
    """Open the page headless; return what its check script recorded, and the console lines."""
    proc = _chromium(exe, page, profile, "--dump-dom")
    parser = _BodyAttrs()
    parser.feed(proc.stdout)
    attrs = parser.attrs or {}
    assert attrs.get("data-check") == "done", f"the page's check did not run:\n{proc.stdout[:2000]}\n{proc.stderr[-2000:]}"
    return {"audio_total": int(attrs["data-audio-total"]), "audio_failed": json.loads(attrs["data-audio-failed"]),
            "images_failed": json.loads(attrs["data-images-failed"]), "errors": json.loads(attrs["data-errors"]),
            "console": [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]}


def test_report_in_chromium(kmeans_run, chromium, tmp_path, record_property):
    page = kmeans_run / "report.html"
    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing from the network
    check = page_check(chromium, page, tmp_path / "profile")
    assert check["audio_total"] == 9  # 3 clusters x 3 representative clips
    assert check["audio_failed"] == [] and check["images_failed"] == []
    assert check["errors"] == [] and check["console"] == []

    shot = kmeans_run / "report_screenshot.png"
    proc = _chromium(chromium, page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000")
    assert shot.is_file(), proc.stderr[-2000:]
    from PIL import Image
    with Image.open(shot) as image:
        assert image.format == "PNG" and image.size == (1280, 2000)
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
        assert colours is None or len(colours) > 50  # text, map and spectrograms, not a blank page
    record_property("report_screenshot", str(shot))
    print(f"report screenshot: {shot}", file=sys.stderr)

    # the check is not vacuous: a missing excerpt is reported
    broken = tmp_path / "broken"
    shutil.copytree(kmeans_run, broken, ignore=shutil.ignore_patterns("cache"))
    (broken / "report_files" / "audio" / "c0_0.wav").unlink()
    check = page_check(chromium, broken / "report.html", tmp_path / "profile")
    assert check["audio_failed"] == ["report_files/audio/c0_0.wav"]


def test_report_escapes_file_names(tmp_path):
    root = tmp_path / "rec"
    (root / "a").mkdir(parents=True)
    name = 'a/<b>&"x".wav'
    sf.write(str(root / name), _sound("low", 0.6, 1), RATE)
    sf.write(str(root / "a" / "plain.wav"), _sound("high", 0.6, 1), RATE)
    run_cli("cluster", root, "--k", 2, "--method", "kmeans", "--out", tmp_path / "out", *FAST)
    text = (tmp_path / "out" / "report.html").read_text()
    assert '<b>&"x"' not in text and "&lt;b&gt;&amp;&quot;x&quot;.wav" in text
