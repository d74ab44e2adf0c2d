"""Safe extraction of downloaded zip and tar archives (DESIGN.md §2).

Archives come from the internet or from a user's disk, so nothing in them is trusted:

- members with absolute paths, or whose ``..`` components climb out of the target, are refused;
- every link is refused, symbolic or hard, whether it points outside the target or not (none
  of the pinned datasets contains one, and refusing them all means no member can write through
  a link); the message says where the link pointed;
- device, FIFO and other special members are refused;
- a file member must have a place of its own: one that names the target folder itself (``.``,
  ``set/..``), lies under another member's file, or repeats a path already extracted (a later
  copy would silently replace what came first) is refused;
- the declared uncompressed sizes are summed before anything is written (a zip's central
  directory up front; a tar, which has no index, member by member before each one's bytes),
  and the bytes actually written are counted as well, because headers can lie.

Extraction happens in a hidden sibling directory that is renamed to the target only when
everything succeeded, so an interrupted or refused extraction never leaves a target that looks
complete.
"""
from __future__ import annotations

import contextlib
import posixpath
import re
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

CHUNK = 1 << 20

# (name in the archive, relative path, opener of its bytes); the opener is None for a folder
Member = tuple[str, str, Callable[[], IO[bytes]] | None]


class ArchiveError(Exception):
    """The file is not a readable zip or tar archive (wrong format, damaged or truncated)."""


class UnsafeArchiveError(ArchiveError):
    """A member would write outside the target, is a link or special file, or is too big."""


def safe_extract(archive: Path, target: Path, *, max_bytes: int) -> list[Path]:
    """Extract `archive` (zip or tar, detected by content) into the new directory `target`.

    Returns the paths of the extracted files. Raises UnsafeArchiveError naming the archive and
    the offending member, ArchiveError for a file that is no archive, and FileExistsError if
    `target` already exists (it is never merged into or overwritten).
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise FileExistsError(f"{target} already exists; remove it to extract {archive.name} again")
    partial = target.with_name(f".{target.name}.partial")
    if partial.exists():  # left behind by an extraction that was killed
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    try:
        written = _extract_into(archive, partial, max_bytes)
        partial.rename(target)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return [target / rel for rel in written]


def _extract_into(archive: Path, partial: Path, max_bytes: int) -> list[str]:
    """Write the archive's members under `partial`, counting bytes; return the files' paths."""
    members = (_zip_members(archive, max_bytes) if _is_zip(archive)
               else _tar_members(archive, partial, max_bytes))
    written: list[str] = []
    placed: dict[str, str] = {}  # path -> "file" or "folder", for every member and its parents
    total = 0
    try:
        with contextlib.closing(members):
            for name, rel, opener in members:
                _place(archive, name, rel, "folder" if opener is None else "file", placed)
                dest = partial / rel
                if opener is None:
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with opener() as src, open(dest, "wb") as dst:
                    while block := src.read(CHUNK):
                        total += len(block)
                        if total > max_bytes:
                            raise _unsafe(archive, name,
                                          f"takes the extracted data past max_bytes={max_bytes}")
                        dst.write(block)
                written.append(rel)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
        raise ArchiveError(f"{archive} is damaged or truncated ({err})") from err
    return written


def _place(archive: Path, name: str, rel: str, kind: str, placed: dict[str, str]) -> None:
    """Refuse a member whose path is not free for it; record it and its parent folders."""
    if rel == ".":
        if kind == "file":
            raise _unsafe(archive, name, "has no file name of its own (it names the target folder itself)")
        return
    parents = []
    parent = posixpath.dirname(rel)
    while parent:
        parents.append(parent)
        parent = posixpath.dirname(parent)
    for parent in parents:
        if placed.get(parent) == "file":
            raise _unsafe(archive, name, f"lies under {parent!r}, which the archive holds as a file")
    before = placed.get(rel)
    if before == kind == "file":
        raise _unsafe(archive, name, f"is the second member extracted to {rel!r}; it would silently "
                                     "replace the first")
    if before is not None and before != kind:
        raise _unsafe(archive, name, f"makes {rel!r} both a file and a folder")
    placed[rel] = kind
    for parent in parents:
        placed.setdefault(parent, "folder")


def _is_zip(archive: Path) -> bool:
    """Tell zip from tar by content; a file name says nothing about what was downloaded."""
    with open(archive, "rb") as f:
        if f.read(4) in (b"PK\x03\x04", b"PK\x05\x06"):
            return True
    if tarfile.is_tarfile(archive):
        return False
    if zipfile.is_zipfile(archive):  # a zip behind a prefix, e.g. a self-extractor stub
        return True
    raise ArchiveError(f"{archive} is neither a zip nor a tar archive (plain, gz, bz2 or xz)")


def _zip_members(archive: Path, max_bytes: int) -> Iterator[Member]:
    """Check the whole zip from its central directory, then yield its members."""
    with zipfile.ZipFile(archive) as zf:
        checked: list[tuple[zipfile.ZipInfo, str]] = []
        declared = 0
        for info in zf.infolist():
            # Unix-made zips keep st_mode in the high bits; a type of 0 means "plain entry".
            kind = stat.S_IFMT(info.external_attr >> 16) if info.create_system == 3 else 0
            if kind == stat.S_IFLNK:
                link = zf.read(info).decode("utf-8", "replace")
                raise _link_refusal(archive, info.filename, "symbolic", link)
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise _unsafe(archive, info.filename, "is a device, FIFO or socket")
            rel = _relative(archive, info.filename)
            declared += info.file_size
            if declared > max_bytes:
                raise _unsafe(archive, info.filename, _too_big(max_bytes))
            checked.append((info, rel))
        for info, rel in checked:
            yield info.filename, rel, None if info.is_dir() else (lambda info=info: zf.open(info))


def _tar_members(archive: Path, partial: Path, max_bytes: int) -> Iterator[Member]:
    """Stream the tar once, checking each member before any of its bytes are written."""
    data_filter = getattr(tarfile, "data_filter", None)  # Python >= 3.11.4
    with tarfile.open(archive, "r|*") as tf:
        declared = 0
        for member in tf:
            if member.issym() or member.islnk():
                kind = "symbolic" if member.issym() else "hard"
                raise _link_refusal(archive, member.name, kind, member.linkname)
            if not (member.isreg() or member.isdir()):
                raise _unsafe(archive, member.name, "is a device, FIFO or other special file")
            rel = _relative(archive, member.name)
            if member.isreg():
                declared += member.size
                if declared > max_bytes:
                    raise _unsafe(archive, member.name, _too_big(max_bytes))
            if data_filter is not None:  # the standard library's own checks, as a second layer
                try:
                    data_filter(member, str(partial))
                except tarfile.FilterError as err:
                    why = f"is refused by tarfile's data filter ({err})"
                    raise _unsafe(archive, member.name, why) from err
            yield member.name, rel, None if member.isdir() else (lambda member=member: tf.extractfile(member))


def _relative(archive: Path, name: str) -> str:
    """The member's path relative to the target, refusing any that would land outside it."""
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        raise _unsafe(archive, name, "has an absolute path")
    rel = posixpath.normpath(name.replace("\\", "/"))
    if rel == ".." or rel.startswith("../"):
        raise _unsafe(archive, name, "climbs out of the target through '..'")
    return rel


def _link_refusal(archive: Path, name: str, kind: str, link: str) -> UnsafeArchiveError:
    """Every link is refused; the message says whether it would have pointed outside."""
    base = posixpath.dirname(name) if kind == "symbolic" else ""  # hard links name archive paths
    resolved = posixpath.normpath(posixpath.join(base, link))
    outside = link.startswith("/") or resolved == ".." or resolved.startswith("../")
    where = "outside the target" if outside else "inside the archive"
    why = f"is a {kind} link to {link!r} ({where}); links are never extracted"
    return _unsafe(archive, name, why)


def _too_big(max_bytes: int) -> str:
    return f"brings the declared sizes past max_bytes={max_bytes} (a decompression bomb?)"


def _unsafe(archive: Path, member: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(f"refusing to extract {archive}: member {member!r} {why}")
