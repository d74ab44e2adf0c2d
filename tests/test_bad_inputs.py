"""Every kind of input users have: processed correctly, or rejected with a reason — never a crash
and never a silent drop (the rejected table plus the clips account for every file)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from uvac import pipeline
from uvac.audio import Rejected, decode
from conftest import folder_dataset, tone, write_audio

RATE = 16000


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """A folder dataset holding every odd input of the foundation issue, labelled by subfolder."""
    root = tmp_path_factory.mktemp("messy")
    good = {}

    def ok(rel, **kw):
        good[rel] = kw
        return write_audio(root / rel, **kw)

    for bits in ("PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE"):
        ok(f"depth/{bits}.wav", rate=RATE, subtype=bits)
    for rate in (8000, 22050, 44100, 48000):
        ok(f"rates/r{rate}.wav", rate=rate)
    ok("channels/stereo.wav", channels=2)
    ok("channels/surround51.wav", channels=6)
    ok("formats/clip.flac", format="FLAC")
    ok("formats/clip.ogg", format="OGG", subtype="VORBIS")
    ok("formats/clip.aiff", format="AIFF")
    ok("formats/clip.mp3", format="MP3")
    ok("long/three_seconds.wav", seconds=3.0)
    ok("ünïcode dir/späced name ☃.wav")

    bad = {}
    trunc = write_audio(root / "bad/truncated_header.wav").read_bytes()[:20]
    (root / "bad/truncated_header.wav").write_bytes(trunc)
    bad["bad/truncated_header.wav"] = "unreadable audio"
    (root / "bad/zero_bytes.wav").write_bytes(b"")
    bad["bad/zero_bytes.wav"] = "unreadable audio"
    sf.write(str(root / "bad/no_frames.wav"), np.zeros((0, 1), np.float32), RATE)
    bad["bad/no_frames.wav"] = "zero-length audio"
    (root / "bad/text.wav").write_text("this is not audio at all\n" * 20)
    bad["bad/text.wav"] = "unreadable audio"
    sf.write(str(root / "bad/silence.wav"), np.zeros(RATE, np.float32), RATE)
    bad["bad/silence.wav"] = "silence only"
    nan = tone(RATE, 0.5)
    nan[100, 0], nan[200, 0] = np.nan, np.inf
    sf.write(str(root / "bad/nan_inf.wav"), nan, RATE, subtype="FLOAT")
    bad["bad/nan_inf.wav"] = "2 NaN/inf samples"
    (root / "notes.txt").write_text("recorded in the lab\n")
    bad["notes.txt"] = "not an audio file"
    write_audio(root / "top_level.wav")
    bad["top_level.wav"] = "no subfolder"

    cfg = folder_dataset(root)
    summary = pipeline.build_interim("messy", cfg, root, root.parent / "interim", seed=0, workers=2)
    clips = pd.read_parquet(root.parent / "interim" / "clips.parquet")
    rejected = pd.read_csv(root.parent / "interim" / "rejected.csv")
    return root, good, bad, summary, clips, rejected, cfg


def test_every_file_is_either_a_clip_or_rejected(messy):
    root, good, bad, summary, clips, rejected, _ = messy
    assert sorted(clips["clip_id"]) == sorted(good)
    assert sorted(rejected["file"]) == sorted(bad)
    assert summary["files"] == len(good) + len(bad) == len([p for p in root.rglob("*") if p.is_file()])
    assert summary["rejected"] == len(bad)


def test_rejections_say_why(messy):
    *_, rejected, _ = messy
    bad = messy[2]
    reasons = dict(zip(rejected["file"], rejected["reason"]))
    for rel, why in bad.items():
        assert why in reasons[rel], (rel, reasons[rel])


def test_good_files_decode_to_the_same_tone(messy):
    root, good, *_ = messy
    ref = decode(root / "depth/PCM_16.wav", RATE).wave
    for rel, kw in good.items():
        wave = decode(root / rel, RATE).wave
        n = min(len(ref), len(wave), RATE // 2) - 200  # lossy codecs and resamplers differ at the edges
        tol = 0.05 if ("ogg" in rel or "mp3" in rel or "U8" in rel) else 0.01
        if kw.get("channels"):  # mix-down averages channels scaled 1, 1/2, ..., 1/c
            scale = np.mean([1 / (c + 1) for c in range(kw["channels"])])
            assert np.allclose(wave[200:n], ref[200:n] * scale, atol=tol), rel
        else:
            assert np.allclose(wave[200:n], ref[200:n], atol=tol), rel


def test_resampling_keeps_the_pitch(messy):
    root = messy[0]
    for rate in (8000, 22050, 44100, 48000):
        wave = decode(root / f"rates/r{rate}.wav", RATE).wave
        assert len(wave) == RATE // 2
        peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * RATE / len(wave)
        assert abs(peak_hz - 440) < 3


def test_long_clip_is_trimmed_and_metadata_recorded(messy):
    clips = messy[4]
    row = clips.set_index("clip_id").loc["long/three_seconds.wav"]
    assert row["n_samples"] == RATE and row["duration_s"] == pytest.approx(3.0)
    st = clips.set_index("clip_id").loc["channels/surround51.wav"]
    assert st["channels"] == 6 and st["native_rate"] == RATE
    assert clips.set_index("clip_id").loc["rates/r44100.wav", "native_rate"] == 44100
    assert clips["sha256"].str.len().eq(64).all()


def test_features_of_the_messy_folder(messy, tmp_path):
    root, good, *_ , cfg = messy
    summary = pipeline.build_features("messy", cfg, root.parent / "interim", tmp_path / "features", seed=0, workers=1)
    assert summary["clips"] == len(good) and summary["shape"] == [1, 128, 99]
    manifest = pd.read_parquet(tmp_path / "features" / "manifest.parquet")
    assert set(manifest["label"]) == {"depth", "rates", "channels", "formats", "long", "ünïcode dir"}
    short = manifest.set_index("clip_id").loc["depth/PCM_16.wav", "active_frames"]
    assert short == 50  # 0.5 s of audio: frames starting before sample 8000
    for split in ("train", "val", "test"):
        data = pipeline.load_split(tmp_path / "features", split)
        assert data["x"].min() >= 0 and data["x"].max() <= 1
        assert np.all(data["x"][:, 0][data["mask"][:, None, :].repeat(128, 1) == 0] == 0)


def test_segment_mode_cuts_long_recordings(tmp_path):
    write_audio(tmp_path / "src/a/long.wav", seconds=3.5)
    cfg = folder_dataset(tmp_path / "src", long_files={"mode": "segment", "max_segments": None},
                         split={"method": "all", "fractions": None})
    pipeline.build_interim("seg", cfg, tmp_path / "src", tmp_path / "interim", seed=0)
    clips = pd.read_parquet(tmp_path / "interim" / "clips.parquet")
    assert list(clips["clip_id"]) == ["a/long.wav#0", "a/long.wav#1", "a/long.wav#2"]
    assert list(clips["start_s"]) == [0.0, 1.0, 2.0] and (clips["n_samples"] == RATE).all()


def test_csv_labels_duplicates_and_missing(tmp_path):
    src = tmp_path / "src"
    for name in ("a.wav", "b.wav", "c.wav", "d.flac"):
        write_audio(src / name, format="FLAC" if name.endswith("flac") else None)
    (src / "labels.csv").write_text("file,label\na.wav,dog\nb.wav,cat\na.wav,cat\nmissing.wav,dog\nd.flac,\n")
    cfg = folder_dataset(src, labels={"from": "csv", "pattern": None, "csv": "labels.csv"})
    pipeline.build_interim("csv", cfg, src, tmp_path / "interim", seed=0)
    clips = pd.read_parquet(tmp_path / "interim" / "clips.parquet")
    reasons = pd.read_csv(tmp_path / "interim" / "rejected.csv").set_index("file")["reason"].to_dict()
    assert dict(zip(clips["clip_id"], clips["label"])) == {"a.wav": "dog", "b.wav": "cat"}
    assert reasons["a.wav"].startswith("duplicate clip id: listed again on line 4")
    assert "but the file is missing" in reasons["missing.wav"]
    assert reasons["c.wav"] == "no label: not listed in labels.csv"
    assert reasons["d.flac"].startswith("empty label")


def test_regex_labels(tmp_path):
    src = tmp_path / "src"
    write_audio(src / "dog_01.wav")
    write_audio(src / "cat_02.wav")
    write_audio(src / "unlabelled.wav")
    cfg = folder_dataset(src, labels={"from": "regex", "pattern": r"^(?P<label>[a-z]+)_\d+\.wav$", "csv": None})
    pipeline.build_interim("rx", cfg, src, tmp_path / "interim", seed=0)
    clips = pd.read_parquet(tmp_path / "interim" / "clips.parquet")
    assert dict(zip(clips["clip_id"], clips["label"])) == {"cat_02.wav": "cat", "dog_01.wav": "dog"}
    assert "does not match" in pd.read_csv(tmp_path / "interim" / "rejected.csv")["reason"][0]


def test_decode_rejects_directly():
    with pytest.raises(Rejected, match="unreadable"):
        decode("/nonexistent/file.wav", RATE)


# --- data faults at scale (issue 5): 500 files, 5 % of them bad ------------------------------------

GOOD_FORMATS = [  # (extension, soundfile format, subtype): the formats users have
    ("wav", "WAV", "PCM_16"), ("wav", "WAV", "PCM_24"), ("wav", "WAV", "FLOAT"),
    ("flac", "FLAC", "PCM_16"), ("flac", "FLAC", "PCM_24"), ("ogg", "OGG", "VORBIS")]
GOOD_RATES = (8000, 16000, 22050, 44100, 48000)
# Each kind of bad file: how to make it, and the reason rejected.csv must give.
BAD_KINDS = {
    "truncated_header": ("unreadable audio", lambda p: p.write_bytes(write_audio(p).read_bytes()[:20])),
    "zero_bytes": ("unreadable audio", lambda p: p.write_bytes(b"")),
    "text_named_wav": ("unreadable audio", lambda p: p.write_text("not audio, despite the name\n" * 10)),
    "no_frames": ("zero-length audio", lambda p: sf.write(str(p), np.zeros((0, 1), np.float32), RATE)),
    "silence": ("silence only", lambda p: sf.write(str(p), np.zeros(RATE // 4, np.float32), RATE, subtype="PCM_16")),
    "nan_inf": ("NaN/inf samples", lambda p: sf.write(
        str(p), np.where(np.arange(RATE // 4) % 97 == 0, np.nan, 0.3).astype(np.float32), RATE, subtype="FLOAT")),
}


@pytest.fixture(scope="module")
def at_scale(tmp_path_factory):
    """500 files: 475 valid ones in every format, rate and channel count users have, 0.2-1 s long,
    in five labelled subfolders; 25 bad ones mixed in (5 %), of every kind the decoder or the
    indexer rejects."""
    root = tmp_path_factory.mktemp("scale") / "recordings"
    rng = np.random.default_rng(5)
    good, bad = set(), {}
    for i in range(475):
        ext, fmt, subtype = GOOD_FORMATS[i % len(GOOD_FORMATS)]
        rate, channels = GOOD_RATES[i % len(GOOD_RATES)], 1 + (i % 7 == 0)
        label = f"class{i % 5}"
        rel = f"{label}/{i:03d}_{rate}_{channels}ch_{subtype.lower()}.{ext}"
        write_audio(root / rel, rate=rate, seconds=float(rng.uniform(0.2, 1.0)), freq=200 + 300 * (i % 5),
                    channels=channels, subtype=subtype, format=fmt)
        good.add(rel)
    kinds = list(BAD_KINDS) + ["not_audio_extension", "top_level"]
    for j in range(25):
        kind = kinds[j % len(kinds)]
        if kind == "not_audio_extension":  # a real WAV that does not say so, or notes beside the audio
            rel = f"class{j % 5}/bad_{j:02d}" + (".bin" if j % 2 else ".txt")
            write_audio(root / rel, format="WAV")
            bad[rel] = "not an audio file"
        elif kind == "top_level":  # nothing to take a label from
            rel = f"bad_{j:02d}_loose.wav"
            write_audio(root / rel)
            bad[rel] = "no subfolder"
        else:
            rel = f"class{j % 5}/bad_{j:02d}_{kind}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            BAD_KINDS[kind][1](root / rel)
            bad[rel] = BAD_KINDS[kind][0]
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert len(on_disk) == 500 and on_disk == good | set(bad) and not good & set(bad)

    cfg = folder_dataset(root, clip_seconds=0.5)
    interim, features = root.parent / "interim", root.parent / "features"
    summary = pipeline.build_interim("scale", cfg, root, interim, seed=0, workers=2)
    feats = pipeline.build_features("scale", cfg, interim, features, seed=0, workers=2)
    return good, bad, summary, feats, pd.read_csv(interim / "rejected.csv"), features


def test_at_scale_every_good_file_has_features(at_scale):
    good, _, summary, feats, _, features = at_scale
    manifest = pd.read_parquet(features / "manifest.parquet")
    assert set(manifest["path"]) == good and manifest["clip_id"].is_unique and len(manifest) == len(good)
    assert summary["files_used"] == feats["clips"] == 475 and feats["shape"] == [1, 128, 49]
    in_splits = set()
    for split in ("train", "val", "test"):
        data = pipeline.load_split(features, split)
        assert len(data["x"]) == len(data["clip_id"]) == len(data["mask"]) > 0
        assert np.isfinite(data["x"]).all() and data["x"].min() >= 0 and data["x"].max() <= 1
        assert (data["mask"].sum(axis=1) > 0).all()  # every clip holds some audio
        in_splits |= set(data["clip_id"])
    assert in_splits == good
    assert set(manifest["label"]) == {f"class{c}" for c in range(5)}


def test_at_scale_every_bad_file_is_rejected_with_its_reason(at_scale):
    good, bad, summary, _, rejected, _ = at_scale
    assert rejected["file"].is_unique and set(rejected["file"]) == set(bad)
    assert rejected["reason"].notna().all() and (rejected["reason"].str.strip() != "").all()
    reasons = dict(zip(rejected["file"], rejected["reason"]))
    for rel, why in bad.items():
        assert why in reasons[rel], (rel, reasons[rel])
    assert set(rejected["stage"]) == {"index", "decode"}


def test_at_scale_good_plus_rejected_is_every_file_exactly_once(at_scale):
    good, bad, summary, _, rejected, _ = at_scale
    assert len(good) + len(rejected) == 500
    assert not good & set(rejected["file"])
    assert summary["files"] == 500 and summary["rejected"] == 25 and summary["clips"] == 475
