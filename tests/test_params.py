"""params.yaml is validated before any work, with messages that name the key path."""
import copy
import subprocess
import sys

import pytest

from uvac import params as P
from conftest import REPO, write_overlay


@pytest.fixture(scope="module")
def paper():
    return P.load(REPO / "params.yaml")


def test_repo_params_and_demo_overlay_are_valid(paper):
    demo = P.load(REPO / "params.yaml", [REPO / "config" / "demo.yaml"])
    assert demo["build"]["datasets"] == ["synth_digits", "synth_scenes", "synth_music"]
    assert paper["build"]["datasets"] != demo["build"]["datasets"]  # the paper config stays the default
    assert demo["datasets"]["fsdd"] == paper["datasets"]["fsdd"]  # the overlay merges, it does not replace
    assert demo["methods"]["uvac"]["lr_start"] == paper["methods"]["uvac"]["lr_start"]


@pytest.mark.parametrize("overlays", [["smoke.yaml"], ["cpu-accuracy.yaml"], ["cpu-accuracy.yaml", "cpu-accuracy-seeds.yaml"]])
def test_documented_overlays_are_valid(overlays):
    """The overlays the README's commands name pass the validation a Snakemake run does first
    (P.load raises, naming the key, where they do not)."""
    P.load(REPO / "params.yaml", [REPO / "config" / name for name in overlays])


def test_deep_merge_replaces_lists_and_merges_dicts():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert P.deep_merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}


@pytest.mark.parametrize("mutate, expected", [
    (lambda p: p["datasets"]["fsdd"].update(sample_rat=16000), "datasets.fsdd: unknown key(s) ['sample_rat']"),
    (lambda p: p["datasets"]["fsdd"].update(clip_seconds="one"), "datasets.fsdd.clip_seconds: expected number"),
    (lambda p: p["datasets"]["fsdd"].pop("split"), "datasets.fsdd.split: missing"),
    (lambda p: p["datasets"]["fsdd"]["features"].update(n_fft=-1), "datasets.fsdd.features.n_fft"),
    (lambda p: p["datasets"]["fsdd"]["features"].update(n_mels=64), "datasets.fsdd.features: unknown key(s) ['n_mels']"),
    (lambda p: p["datasets"]["fsdd"].update(type="fsd"), "datasets.fsdd.type: expected one of"),
    (lambda p: p["datasets"]["fsdd"]["split"].update(fractions=[0.5, 0.1, 0.1]), "datasets.fsdd.split.fractions: expected train, val, test fractions summing to 1"),
    (lambda p: p["datasets"]["gtzan"].update(generator={"n_per_class": 3}), "datasets.gtzan.generator: not a key of a gtzan dataset"),
    (lambda p: p["datasets"]["synth_digits"].pop("generator"), "datasets.synth_digits.generator: missing"),
    (lambda p: p["build"].update(datasets=["nope"]), "build.datasets: 'nope' is not a key of datasets"),
    (lambda p: p["build"].update(datasets=[]), "build.datasets"),
    (lambda p: p.update(seed=-1), "seed"),
    (lambda p: p.update(extra=1), "(top level): unknown key(s) ['extra']"),
    (lambda p: p["download"].pop("retries"), "download.retries: missing"),
    (lambda p: p["tables"]["table1"]["rows"][0].update(dataset="nope"), "tables.table1.rows[0].dataset: 'nope' is not a key of datasets"),
    (lambda p: p["tables"]["table2"]["rows"][1]["methods"].append("kmean"), "tables.table2.rows[1].methods: 'kmean' is not a key of methods"),
    (lambda p: p["tables"]["table3"]["rows"][0]["methods"].append("uvac"), "tables.table3.rows[0].methods: 'uvac' (uvac) cannot train on 'gtzan'"),
    (lambda p: p["tables"]["table1"]["rows"][0].update(ks=[1]), "tables.table1.rows.0.ks.0"),
    (lambda p: p["figures"]["tsne"]["uvac_fig3_tsne"].update(dataset="nope"), "figures.tsne.uvac_fig3_tsne.dataset: 'nope'"),
    (lambda p: p["methods"]["kmeans"].pop("n_init"), "methods.kmeans.n_init: missing"),
    (lambda p: p["methods"]["gmm_em"].update(covariance_type="full"), "methods.gmm_em.covariance_type: expected one of"),
    (lambda p: p["methods"]["labels"].update(epochs=3), "methods.labels: unknown key(s) ['epochs']"),
    (lambda p: p["methods"]["linear_vae"].update(info_weight=1.0), "methods.linear_vae: unknown key(s) ['info_weight']"),
    (lambda p: p["methods"]["cat_uvac"].pop("neighbour_weight"), "methods.cat_uvac.neighbour_weight: missing"),
    (lambda p: p["methods"]["uvac"].update(neighbour_space="raw"), "methods.uvac.neighbour_space: expected one of"),
    (lambda p: p["methods"]["cat_uvac"].update(neighbour_space="pretext"), "methods.cat_uvac.pretext_epochs: missing"),
    (lambda p: p["methods"]["linear_vae"].update(pretext_epochs=10), "methods.linear_vae: unknown key(s) ['pretext_epochs']"),
    (lambda p: p["methods"]["cat_uvac"].pop("cluster_init_epochs"), "methods.cat_uvac.cluster_init_epochs: missing"),
    (lambda p: p["methods"]["cat_uvac"].update(speaker_centred=True), "methods.cat_uvac.neighbour_space: expected 'pretext', got 'input' (speaker_centred acts on the pretext embedding)"),
    (lambda p: p["methods"]["cat_uvac"].update(cluster_init_epochs=3), "methods.cat_uvac.neighbour_space: expected 'pretext', got 'input' (cluster_init_epochs starts from the pretext embedding)"),
    (lambda p: p["methods"]["linear_vae"].update(cluster_init_epochs=3), "methods.linear_vae: unknown key(s) ['cluster_init_epochs']"),
    (lambda p: p["methods"]["cat_uvac"].update(speaker_centred="yes"), "methods.cat_uvac.speaker_centred: expected boolean"),
    (lambda p: p["methods"]["cat_uvac"].update(neighbour_space="pretext", pretext_epochs=5, speaker_whitening=8),
     "methods.cat_uvac.speaker_centred: expected True, got False (speaker_whitening acts on the speaker-centred embedding)"),
    (lambda p: p["methods"]["uvac"].update(speaker_whitening=-1), "methods.uvac.speaker_whitening: -1 is less than the minimum of 0"),
    (lambda p: p["methods"]["uvac"].update(warm_start_lr=-1), "methods.uvac.warm_start_lr: -1 is less than the minimum of 0"),
    (lambda p: p["methods"]["uvac"].update(init_lr_end=1e-4), "methods.uvac.cluster_init_epochs: missing"),
    (lambda p: p["methods"]["cat_uvac"].update(init_lr_end=1e-4), "methods.cat_uvac.cluster_init_epochs: 0 is less than the minimum of 1"),
    (lambda p: p["evaluate"].update(silhouette_sample=5), "evaluate.silhouette_sample"),
])
def test_bad_params_name_the_key(paper, mutate, expected):
    bad = copy.deepcopy(paper)
    mutate(bad)
    with pytest.raises(P.ParamsError) as err:
        P.validate(bad)
    assert expected in str(err.value)


def test_uvac_methods_may_take_the_cluster_remedies(paper):
    """They are optional for uvac (off when absent), so the paper's uvac methods need not list them."""
    ok = copy.deepcopy(paper)
    ok["methods"]["uvac"].update(info_weight=100.0, neighbour_weight=60.0, neighbour_space="log_cmn_stretched")
    P.validate(ok)
    ok["methods"]["uvac"].update(neighbour_space="pretext", pretext_epochs=50, speaker_centred=True, cluster_init_epochs=3,
                                 warm_start_lr=1e-4, speaker_whitening=32, init_lr_end=1e-5)
    P.validate(ok)


def test_folder_dataset_needs_label_details(paper):
    bad = copy.deepcopy(paper)
    bad["datasets"]["mine"] = copy.deepcopy(bad["datasets"]["fsdd"]) | {
        "type": "folder", "source": "/x", "labels": {"from": "regex", "pattern": None, "csv": None}}
    with pytest.raises(P.ParamsError, match=r"datasets\.mine\.labels\.pattern: required"):
        P.validate(bad)


def test_cli_and_snakemake_stop_on_bad_overlay(tmp_path, workflow_copy):
    overlay = write_overlay(tmp_path / "bad.yaml", {"datasets": {"fsdd": {"hop_size": 160}}})
    cli = subprocess.run([sys.executable, "-m", "uvac.cli", "-p", str(REPO / "params.yaml"), "-c", str(overlay), "validate"],
                         capture_output=True, text=True)
    assert cli.returncode == 1
    assert "datasets.fsdd: unknown key(s) ['hop_size']" in cli.stderr
    assert "Traceback" not in cli.stderr
    smk = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", str(overlay)],
                         cwd=workflow_copy, capture_output=True, text=True)
    assert smk.returncode != 0
    assert "datasets.fsdd: unknown key(s) ['hop_size']" in smk.stdout + smk.stderr
