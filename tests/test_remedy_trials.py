"""benchmarks/remedy_trials.py's one-speaker subsets: only that speaker's clips, from every split."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from remedy_trials import one_speaker  # noqa: E402


def test_one_speaker_trains_on_its_training_clips_and_scores_on_all_of_them(tmp_path):
    speakers = {}
    for split, n in (("train", 6), ("val", 2), ("test", 3)):
        ids = np.array([f"{split}{i}.wav" for i in range(n)])
        speakers.update({clip: ("ann", "bo")[i % 2] for i, clip in enumerate(ids)})
        np.savez(tmp_path / f"{split}.npz", x=np.arange(n, dtype=np.float32).reshape(n, 1, 1, 1),
                 mask=np.ones((n, 1), np.float32), clip_id=ids, label_id=np.arange(n))
    pd.DataFrame({"clip_id": list(speakers), "speaker": list(speakers.values())}).to_parquet(tmp_path / "manifest.parquet")

    train, scored = one_speaker(tmp_path, "bo")
    assert train["clip_id"].tolist() == ["train1.wav", "train3.wav", "train5.wav"]
    assert train["x"].ravel().tolist() == [1, 3, 5] and train["label_id"].tolist() == [1, 3, 5]
    assert scored["clip_id"].tolist() == ["train1.wav", "train3.wav", "train5.wav", "val1.wav", "test1.wav"]
    assert len(scored["mask"]) == 5

    with pytest.raises(SystemExit, match=r"manifest.parquet: no clips of speaker 'cy'; expected one of \['ann', 'bo'\]"):
        one_speaker(tmp_path, "cy")
