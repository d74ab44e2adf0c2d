"""Where each real dataset is downloaded from, pinned: URLs (mirrors in order), sizes, checksums.

Only values found in public indexes are written here, each with its origin. GitHub builds its
archives on request and publishes no checksum for them, so those entries carry none: the
pipeline records the sha256 of what it got on the first download (raw/<dataset>/source.json)
and a commit pin keeps the content fixed.
"""
from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class RemoteFile:
    """One file to download, with what it must verify against (None: not published)."""

    filename: str
    urls: tuple[str, ...]
    size: int | None
    md5: str | None
    sha256: str | None


@dataclass(frozen=True)
class Source:
    """A dataset's pinned files and the facts a user should see before downloading them."""

    name: str
    files: tuple[RemoteFile, ...]
    n_files: int  # audio files in the release, as published (validation bounds K by it before any download)
    homepage: str
    license: str
    citation: str


def _github_archive(repo: str, commit: str) -> RemoteFile:
    """A repository snapshot at a commit; github.com redirects to codeload, listed as fallback."""
    name = repo.split("/")[1]
    return RemoteFile(
        filename=f"{name}-{commit}.zip",
        urls=(f"https://github.com/{repo}/archive/{commit}.zip",
              f"https://codeload.github.com/{repo}/zip/{commit}"),
        size=None, md5=None, sha256=None)


def _zenodo(record: int, filename: str, size: int | None, md5: str) -> RemoteFile:
    """A Zenodo file under both URL forms (the old /record/ redirects to /records/)."""
    return RemoteFile(
        filename=filename,
        urls=(f"https://zenodo.org/record/{record}/files/{filename}?download=1",
              f"https://zenodo.org/records/{record}/files/{filename}?download=1"),
        size=size, md5=md5, sha256=None)


# TAU Urban Acoustic Scenes 2019, development set, Zenodo record 2589280: (file suffix, bytes, md5).
# md5s: soundata/soundata soundata/datasets/tau2019uas.py (REMOTES "development.*"); the same
# md5s with the sizes: DCASE-REPO/dcase_util dcase_util/datasets/tut.py,
# TAUUrbanAcousticScenes_2019_DevelopmentSet package_list (remote_bytes, remote_md5).
_TAU2019_PREFIX = "TAU-urban-acoustic-scenes-2019-development"
_TAU2019_DEV = (
    ("audio.1", 1657550587, "aca4ebfd9ed03d5f747d6ba8c24bc728"),
    ("audio.2", 1666219450, "c4f170408ce77c8c70c532bf268d7be0"),
    ("audio.3", 1817901591, "c7214a07211f10f3250290d05e72c37e"),
    ("audio.4", 1821710642, "a6a62110f6699cf4432072acb1dffda6"),
    ("audio.5", 1803118466, "091a0b6d3c84b8e60e46940aa7d4a8a0"),
    ("audio.6", 1789566029, "114f4ca13e074391b98a1cfd8140de65"),
    ("audio.7", 1747953866, "5951dd2968f7a514e2afbe279c4f060d"),
    ("audio.8", 1728724513, "b0b63dc95b327e1509857c8d8a663cc3"),
    ("audio.9", 1667106209, "3c32a693a6b111ffb957be3c1dd22e9b"),
    ("audio.10", 1632636175, "0ffbf60006da520cc761fb74c878b98b"),
    ("audio.11", 1671793546, "599055d93b4c11057c29be2df54538d4"),
    ("audio.12", 1672592150, "98b8d162ff3665695c4c910e6c372cc8"),
    ("audio.13", 1673481614, "a356c08b1a5a21d433eba37ef87587f4"),
    ("audio.14", 1666137450, "f8969771e7faf7dd471d1cf78b0cf011"),
    ("audio.15", 1675127004, "4758c4b0fb7484faa632266e78850820"),
    ("audio.16", 1648240966, "a18acad9ede8ea76574216feb887f0bc"),
    ("audio.17", 1698414214, "1af7703484632f340da5c33662dc9632"),
    ("audio.18", 1731093704, "b67402bf3e08f4da394a7c18756c0fd2"),
    ("audio.19", 1745153640, "035db315f19106eb848b6f9b32bcc47c"),
    ("audio.20", 1774038704, "9cb28c74911bf8a3eadcf53f50a5b5d6"),
    ("audio.21", 1333808800, "0e44ed85c88ec036a9725b4dd1dfaea0"),
    ("meta", 156863, "09782f2097e4735687af73c44919329c"),
    ("doc", 11299, "1f6879544e80da70099a191613e7e51f"),
)

_ESC50 = Source(
    name="esc50",
    # A commit from v2.0.0 (2017-12-13, "change to WAV version as default"): its README's
    # changelog ends there and lists audio/*.wav and meta/esc50.csv, as later READMEs do (the
    # audio is frozen "to preserve comparability"). No published checksum: soundata's md5 is
    # for master.zip, which moves with every README edit.
    files=(_github_archive("karolpiczak/ESC-50", "f2fd956acf66ebd9ac7e2110711aa78dd684d042"),),
    n_files=2000,
    homepage="https://github.com/karolpiczak/ESC-50",
    license="CC BY-NC 3.0 (the ESC-10 subset: CC BY)",
    citation="K. J. Piczak. ESC: Dataset for Environmental Sound Classification. Proc. 23rd ACM "
             "International Conference on Multimedia, Brisbane, 2015. doi:10.1145/2733373.2806390",
)

SOURCES: dict[str, Source] = {
    "fsdd": Source(
        name="fsdd",
        # Commit fixed by the project's design; GitHub archive, no published checksum.
        files=(_github_archive("Jakobovski/free-spoken-digit-dataset",
                               "26eb9aaf76e81b692f806f9140c2d2777410d7a1"),),
        n_files=3000,
        homepage="https://github.com/Jakobovski/free-spoken-digit-dataset",
        license="CC BY-SA 4.0",
        citation="Z. Jackson et al. Free Spoken Digit Dataset (FSDD). "
                 "https://github.com/Jakobovski/free-spoken-digit-dataset",
    ),
    "audiomnist": Source(
        name="audiomnist",
        # A commit whose README (2023 version, citing the journal paper) describes data/ with
        # one folder per speaker and audioMNIST_meta.txt; the wav files were added once and never
        # changed. GitHub archive (~1 GB), no published checksum.
        files=(_github_archive("soerenab/AudioMNIST", "8d77a2d8754105541742115cefec1e537040a6cf"),),
        n_files=30000,
        homepage="https://github.com/soerenab/AudioMNIST",
        license="MIT",
        citation="S. Becker, J. Vielhaben, M. Ackermann, K.-R. Müller, S. Lapuschkin, W. Samek. "
                 "AudioMNIST: Exploring Explainable Artificial Intelligence for audio analysis on "
                 "a simple benchmark. Journal of the Franklin Institute, 2023. "
                 "doi:10.1016/j.jfranklin.2023.11.038",
    ),
    "urbansound8k": Source(
        name="urbansound8k",
        # md5: soundata/soundata soundata/datasets/urbansound8k.py (REMOTES "all"); several
        # other loaders carry the same value. No index we found publishes the size.
        files=(_zenodo(1203745, "UrbanSound8K.tar.gz", None, "9aa69802bbf37fb986f71ec1483a196e"),),
        n_files=8732,
        homepage="https://urbansounddataset.weebly.com/urbansound8k.html",
        license="CC BY-NC 3.0 (dataset README; non-commercial use only)",
        citation="J. Salamon, C. Jacoby, J. P. Bello. A Dataset and Taxonomy for Urban Sound "
                 "Research. Proc. 22nd ACM International Conference on Multimedia, Orlando, 2014.",
    ),
    "tau2019": Source(
        name="tau2019",
        files=tuple(_zenodo(2589280, f"{_TAU2019_PREFIX}.{part}.zip", size, md5)
                    for part, size, md5 in _TAU2019_DEV),
        n_files=14400,
        homepage="https://zenodo.org/record/2589280",
        license="Tampere University license: free for academic, non-commercial use only",
        citation="A. Mesaros, T. Heittola, T. Virtanen. A multi-device dataset for urban acoustic "
                 "scene classification. Proc. DCASE 2018 Workshop, Surrey, 2018.",
    ),
    "gtzan": Source(
        name="gtzan",
        # md5: mir-dataset-loaders/mirdata mirdata/datasets/gtzan_genre.py (REMOTES "all", same
        # URL); size and sha256: tensorflow/datasets
        # tensorflow_datasets/audio/gtzan/checksums.tsv. The uvic.ca server is often down; the
        # Hugging Face copy (marsyas/gtzan, data/genres.tar.gz) is what many loaders fall back
        # to, and the checksums decide whether it is the same file.
        files=(RemoteFile(
            filename="genres.tar.gz",
            urls=("http://opihi.cs.uvic.ca/sound/genres.tar.gz",
                  "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz"),
            size=1225571541,
            md5="5b3d6dddb579ab49814ab86dba69e7c7",
            sha256="24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"),),
        n_files=1000,
        homepage="http://marsyas.info/downloads/datasets.html",
        license="unpublished (research use; mirdata found no license information)",
        citation="G. Tzanetakis, P. Cook. Musical genre classification of audio signals. IEEE "
                 "Transactions on Speech and Audio Processing 10(5), 2002.",
    ),
    "esc50": _ESC50,
    # ESC-10 is the 10-class subset marked in ESC-50's meta/esc50.csv: the same archive.
    "esc10": replace(_ESC50, name="esc10", n_files=400),
}
