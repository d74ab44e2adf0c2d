"""OUT/report.html of `uvac cluster`: a static page to check clusters by ear.

    report.html        t-SNE map, metrics, cluster sizes, and per cluster the clips closest to its
                       centre (in the method's space), each with an <audio> player and a spectrogram
    report_files/      tsne.png, audio/c<K>_<i>.wav (the clip as the model heard it), spec/c<K>_<i>.png

Only relative links, no scripts or fonts from elsewhere: it works opened from disk, offline. The
page and its files are built in a temporary folder and moved into place at the end, so an
interrupted run leaves the previous report (or none), never a half-written one. A small inline
script records on <body> which players or images failed to load and any script error, so a
headless browser can check the page (tests/test_cluster.py).
"""
from __future__ import annotations

import html
import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from matplotlib.colors import to_hex
from tqdm import tqdm

from . import __version__
from . import features as F
from . import figures
from .io import atomic_path
from .params import digest

log = logging.getLogger("uvac")

THUMB_SIZE = (2.6, 1.2)   # inches at 100 dpi: 260 x 120 px spectrogram thumbnails

# Records load failures and script errors on <body> (data-check="done" once every player settled).
CHECK_SCRIPT = """
(function () {
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && t.tagName) { errors.push('failed to load ' + (t.currentSrc || t.src || t.tagName)); }
    else { errors.push(String(e.message || e)); }
  }, true);
  var consoleError = console.error;
  console.error = function () {
    errors.push(Array.prototype.join.call(arguments, ' '));
    return consoleError.apply(console, arguments);
  };
  function settle(tries) {
    var audio = Array.prototype.slice.call(document.querySelectorAll('audio'));
    var pending = audio.filter(function (a) { return !a.error && a.readyState < 1; });
    if (pending.length && tries > 0) { setTimeout(function () { settle(tries - 1); }, 100); return; }
    var failed = audio.filter(function (a) { return a.error || a.readyState < 1; })
                      .map(function (a) { return a.getAttribute('src'); });
    var images = Array.prototype.slice.call(document.images)
                      .filter(function (i) { return !i.complete || i.naturalWidth === 0; })
                      .map(function (i) { return i.getAttribute('src'); });
    var body = document.body;
    body.setAttribute('data-audio-total', String(audio.length));
    body.setAttribute('data-audio-failed', JSON.stringify(failed));
    body.setAttribute('data-images-failed', JSON.stringify(images));
    body.setAttribute('data-errors', JSON.stringify(errors));
    body.setAttribute('data-check', 'done');
  }
  window.addEventListener('load', function () { settle(50); });
})();
"""

STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d1d1f;
       max-width: 1240px; margin: 1.5em auto; padding: 0 1.2em; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
h3 { font-size: 1.08em; margin: 1.4em 0 .5em; display: flex; align-items: center; gap: .5em; }
code, .file { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: .92em; }
.lead { color: #444; margin-top: 0; }
table { border-collapse: collapse; }
td, th { padding: .25em .8em .25em 0; text-align: left; vertical-align: middle; }
th { font-weight: 600; color: #333; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.metrics td:first-child { color: #555; }
.swatch { display: inline-block; width: .95em; height: .95em; border-radius: 3px; flex: none;
          border: 1px solid rgba(0,0,0,.25); vertical-align: -.1em; }
.bar { background: #e8e8ec; width: 220px; height: .8em; border-radius: 3px; overflow: hidden; }
.bar span { display: block; height: 100%; }
img.map { max-width: 100%; height: auto; border: 1px solid #eee; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(270px, 1fr)); gap: 14px; }
figure.clip { margin: 0; padding: 8px; border: 1px solid #ddd; border-radius: 6px; background: #fafafa; }
figure.clip img { display: block; width: 100%; height: auto; image-rendering: auto; }
figure.clip audio { display: block; width: 100%; margin: 6px 0 4px; }
figcaption { font-size: .86em; color: #333; overflow-wrap: anywhere; }
.note { color: #666; font-size: .9em; }
footer { margin: 3em 0 1em; color: #777; font-size: .85em; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def _num(x: float | None, fmt: str = ".3f") -> str:
    return "n/a" if x is None else format(x, fmt)


def tsne_points(run_dir: Path, points: np.ndarray, *, space: str, perplexity: float, max_points: int,
                seed: int) -> tuple[np.ndarray, np.ndarray]:
    """t-SNE of the method's space, cached beside the model (it costs more than the rest of the report)."""
    run_dir = Path(run_dir)
    path = run_dir / f"tsne-{digest({'space': space, 'perplexity': perplexity, 'max_points': max_points, 'seed': seed, 'n': len(points)})}.npz"
    if path.exists():
        with np.load(path) as data:
            log.info("reusing the t-SNE map in %s", path)
            return data["points"], data["idx"]
    t0 = time.perf_counter()
    log.info("t-SNE of %d clips in space %s ...", min(len(points), max_points), space)
    emb, idx = figures.embed_2d(points, perplexity=perplexity, seed=seed, max_points=max_points)
    run_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        np.savez(tmp, points=emb, idx=idx)
    log.info("t-SNE done (%.1f s)", time.perf_counter() - t0)
    return emb, idx


def map_figure(points, clusters, labels, label_names, *, method: str, space: str, accuracy, title: str):
    """The t-SNE map by cluster, and by true label beside it when there are labels."""
    if (labels >= 0).any():
        return figures.tsne_figure([{"method": method, "space": space, "points": points, "clusters": clusters,
                                     "labels": labels, "accuracy": accuracy}], label_names, title)
    fig = figures._figure(7.5, 5.2)
    ax = fig.subplots()
    figures._scatter_classes(fig, ax, points, clusters, None, "cluster")
    ax.set_title(f"{method} (space: {space}) — by cluster", fontsize="medium")
    ax.set_xlabel("t-SNE 1")
    ax.set_ylabel("t-SNE 2")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.suptitle(title)
    return fig


def representatives(points: np.ndarray, clusters: np.ndarray, k: int, n: int) -> dict[int, np.ndarray]:
    """Per cluster, the indices of up to n clips nearest its centre (the mean of its clips)."""
    out = {}
    for c in range(k):
        members = np.flatnonzero(clusters == c)
        if len(members) == 0:
            out[c] = members
            continue
        pts = points[members].reshape(len(members), -1).astype(np.float64)
        dist = np.linalg.norm(pts - pts.mean(axis=0), axis=1)
        out[c] = members[np.argsort(dist, kind="stable")[:n]]
    return out


def thumbnail(wave: np.ndarray, sample_rate: int, path: Path) -> None:
    """A small log-mel spectrogram (time left to right, low frequencies at the bottom)."""
    n_fft = int(2 ** np.ceil(np.log2(0.025 * sample_rate)))
    wave = np.pad(wave, (0, max(0, n_fft - len(wave))))
    spec = F.spectrogram(wave[None].astype(np.float32), {"kind": "logmel", "n_fft": n_fft, "hop": n_fft // 4,
                                                         "n_mels": 64}, sample_rate)[0]
    fig = figures._figure(*THUMB_SIZE)
    fig.set_layout_engine(None)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(spec, origin="lower", aspect="auto", cmap="magma", vmin=spec.max() - 80, vmax=spec.max(),
              interpolation="nearest")
    ax.set_axis_off()
    fig.savefig(path, format="png", dpi=100)


def _wave(interim: Path, row, cache: dict) -> np.ndarray:
    part = int(row["part"])
    if part not in cache:
        cache[part] = np.load(Path(interim) / "waves" / f"part-{part:05d}.npy", mmap_mode="r")
    return np.asarray(cache[part][int(row["row"])][: int(row["n_samples"])], dtype=np.float32)


def build_report(out: Path, *, run_dir: Path, table: pd.DataFrame, result: dict, metrics: dict, interim: Path,
                 cfg: dict, method_name: str, source: Path, examples: int, tsne: dict, seed: int) -> Path:
    """Write OUT/report.html and OUT/report_files/ (replacing an earlier report as a whole)."""
    out = Path(out)
    k, space = metrics["k"], metrics["space"]
    clusters = np.asarray(result["cluster"], dtype=int)
    points = result["spaces"][space]
    labels = table["label_id"].to_numpy() if "label_id" in table else np.full(len(table), -1)
    label_names = sorted(str(v) for v in table["label"].dropna().unique())
    sr = cfg["sample_rate"]

    tmp = out / f".tmp-report-{os.getpid()}"
    old = out / f".old-report_files-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        files = tmp / "report_files"
        (files / "audio").mkdir(parents=True)
        (files / "spec").mkdir()
        emb, idx = tsne_points(run_dir, points, space=space, perplexity=tsne["tsne_perplexity"],
                               max_points=tsne["tsne_max_points"], seed=seed)
        shown = "" if len(idx) == len(points) else f" (a seeded sample of {len(idx)} of {len(points)} clips)"
        fig = map_figure(emb, clusters[idx], labels[idx], label_names, method=method_name, space=space,
                         accuracy=metrics["accuracy"], title=f"t-SNE of {source.resolve().name}{shown}")
        fig.savefig(files / "tsne.png", format="png", dpi=100)

        colours = [to_hex(c) for c in figures._class_colours(np.arange(k), k)[0]]
        reps = representatives(points, clusters, k, examples)
        waves: dict = {}
        cards = {}
        for c in tqdm(range(k), desc="report: clips", unit="cluster", disable=None):
            cards[c] = []
            for i, j in enumerate(reps[c]):
                row = table.iloc[j]
                stem = f"c{c}_{i}"
                wave = _wave(interim, row, waves)
                sf.write(files / "audio" / f"{stem}.wav", wave, sr, subtype="PCM_16")
                thumbnail(wave, sr, files / "spec" / f"{stem}.png")
                cards[c].append((stem, row, None if result["proba"] is None else float(result["proba"][j].max())))
        page = _page(out=out, source=source, method_name=method_name, metrics=metrics, cfg=cfg, table=table,
                     clusters=clusters, colours=colours, cards=cards, labelled=bool((labels >= 0).any()),
                     examples=examples)
        (tmp / "report.html").write_text(page, encoding="utf-8")

        (out / "report.html").unlink(missing_ok=True)  # no page pointing at files being replaced
        if (out / "report_files").exists():
            os.replace(out / "report_files", old)
        os.replace(files, out / "report_files")
        os.replace(tmp / "report.html", out / "report.html")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out / "report.html"


def _page(*, out, source, method_name, metrics, cfg, table, clusters, colours, cards, labelled, examples) -> str:
    k, n = metrics["k"], metrics["clips"]
    sizes = metrics["cluster_sizes"]
    feats = cfg["features"]
    feat_text = {"stft": f"STFT magnitude, {feats.get('n_fft')}-sample window, hop {feats.get('hop')}, "
                         f"{feats.get('n_bins')} bins",
                 "logmel": f"{feats.get('n_mels')}-band log-mel, {feats.get('n_fft')}-sample window, hop {feats.get('hop')}",
                 "mfcc_stats": f"mean and variance of {feats.get('n_mfcc')} MFCCs"}[feats["kind"]]
    rows = [("recordings", f"<code>{_e(source)}</code>: {metrics['files']} files, {n} clips of "
                           f"{cfg['clip_seconds']:g} s at {cfg['sample_rate']} Hz ({metrics['rejected']} file(s) rejected)"),
            ("features", _e(feat_text)),
            ("method", f"{_e(method_name)} ({_e(metrics['model'])})"
                       + (f", {metrics['pretrain_epochs']} pre-training epochs" if metrics.get("pretrain_epochs") else "")
                       + (f", {metrics['epochs']} training epochs" if metrics.get("epochs") else "")),
            ("clusters in use", f"{metrics['clusters_used']} of {k}"),
            (f"silhouette / DBI / CHI (space {_e(metrics['space'])})",
             f"{_num(metrics['silhouette'])} / {_num(metrics['dbi'])} / {_num(metrics['chi'], '.1f')}")]
    if metrics["accuracy"] is not None:
        rows.append(("accuracy / NMI against the labels", f"{_pct(metrics['accuracy'])} / {_num(metrics['nmi'])}"))
    elif labelled:
        rows.append(("accuracy / NMI", _e("; ".join(metrics["notes"][:1]) or "n/a")))
    metric_rows = "\n".join(f"<tr><td>{name}</td><td>{value}</td></tr>" for name, value in rows)

    size_rows = []
    biggest = max(max(sizes), 1)
    for c in range(k):
        members = table.loc[clusters == c, "label"] if labelled else None
        comp = ""
        if labelled and sizes[c]:
            counts = members.value_counts()
            comp = ", ".join(f"{_e(lab)} ({cnt})" for lab, cnt in counts.head(3).items())
            comp += ", …" if len(counts) > 3 else ""
        size_rows.append(
            f'<tr><td><span class="swatch" style="background:{colours[c]}"></span></td>'
            f'<td><a href="#cluster-{c}">cluster {c}</a></td><td class="num">{sizes[c]}</td>'
            f'<td class="num">{100 * sizes[c] / max(n, 1):.1f} %</td>'
            f'<td><div class="bar"><span style="width:{100 * sizes[c] / biggest:.1f}%;background:{colours[c]}"></span></div></td>'
            + (f"<td>{comp}</td>" if labelled else "") + "</tr>")
    size_head = "<tr><th></th><th>cluster</th><th>clips</th><th>share</th><th></th>" + \
        ("<th>most frequent labels (clips)</th>" if labelled else "") + "</tr>"

    sections = []
    for c in range(k):
        head = (f'<h3 id="cluster-{c}"><span class="swatch" style="background:{colours[c]}"></span>'
                f"Cluster {c} · {sizes[c]} clip{'s' if sizes[c] != 1 else ''} ({100 * sizes[c] / max(n, 1):.1f} %)</h3>")
        if not cards[c]:
            sections.append(head + '<p class="note">No clip is assigned to this cluster.</p>')
            continue
        figs = []
        for stem, row, p in cards[c]:
            name = _e(row["path"])
            where = f"{row['start_s']:.2f}–{row['end_s']:.2f} s"
            extra = ([f"p = {p:.2f}"] if p is not None else []) + \
                ([f"label {_e(row['label'])}"] if labelled and pd.notna(row["label"]) else [])
            figs.append(
                f'<figure class="clip"><img src="report_files/spec/{stem}.png" width="260" height="120" '
                f'alt="spectrogram of {name}, {where}">'
                f'<audio controls preload="metadata" src="report_files/audio/{stem}.wav"></audio>'
                f'<figcaption><span class="file" title="{name}">{name}</span><br>'
                f'{" · ".join([where, *extra])}</figcaption></figure>')
        sections.append(head + '<div class="grid">' + "".join(figs) + "</div>")

    title = f"uvac clusters of {source.resolve().name}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{STYLE}</style>
<script>{CHECK_SCRIPT}</script>
</head>
<body>
<h1>Clusters of <code>{_e(source.resolve().name)}</code></h1>
<p class="lead">{n} clips grouped into k = {k} clusters by {_e(method_name)}.
Listen to the clips nearest each cluster's centre to judge what the cluster holds.
Every clip's cluster is in <a href="assignments.csv">assignments.csv</a>; the scores in
<a href="metrics.json">metrics.json</a>.</p>
<table class="metrics">
{metric_rows}
</table>

<h2>Map</h2>
<p class="note">t-SNE of the clips in the method's space ({_e(metrics['space'])}); nearby points are
similar to the model, distances between groups mean little.</p>
<img class="map" src="report_files/tsne.png" alt="t-SNE map of the clips coloured by cluster">

<h2>Cluster sizes</h2>
<table class="sizes">
{size_head}
{chr(10).join(size_rows)}
</table>

<h2>Representative clips</h2>
<p class="note">Up to {examples} clips per cluster, nearest the cluster's centre (mean of its clips in
space {_e(metrics['space'])}), nearest first. Spectrograms: log-mel, time left to right,
0 to {cfg['sample_rate'] / 2000:g} kHz from bottom to top.{' p = the cluster posterior of the clip.' if metrics['model'] in ('uvac', 'cat_uvac') else ''}</p>
{chr(10).join(sections)}

<footer>Made by uvac {_e(__version__)} on {time.strftime('%Y-%m-%d %H:%M')}. Settings: {_e(json.dumps({'k': k, 'method': method_name, 'seed': metrics['seed']}))}.</footer>
</body>
</html>
"""
