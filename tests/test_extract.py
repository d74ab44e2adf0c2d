"""safe_extract() on real zip and tar archives built here, hostile ones included."""
from __future__ import annotations

import io
import stat
import struct
import tarfile
import zipfile
import zlib

import pytest

from uvac.extract import ArchiveError, UnsafeArchiveError, safe_extract

MB = 1 << 20
GOOD = {"set/a.wav": b"RIFF" + bytes(100), "set/sub/b.txt": b"hello", "set/c.csv": b"x,y\n1,2\n"}


def _zip(path, members):
    """members: {name: bytes, or (bytes, st_mode) for an entry carrying a Unix file type}."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if isinstance(data, tuple):
                data, mode = data
                info.create_system = 3
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return path


def _tar(path, members, mode="w:gz"):
    """members: {name: bytes, or (tar member type, linkname) for links and special files}."""
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type, info.linkname = data
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["zip", "w:gz", "w:bz2", "w:xz", "w"])
def test_good_archive_extracts_fully(tmp_path, kind):
    # deliberately misleading file names: the format is read from the content
    archive = tmp_path / "download.bin"
    if kind == "zip":
        _zip(archive, GOOD)
    else:
        _tar(archive, GOOD, kind)
    target = tmp_path / "out"
    files = safe_extract(archive, target, max_bytes=MB)
    assert sorted(files) == sorted(target / name for name in GOOD)
    for name, data in GOOD.items():
        assert (target / name).read_bytes() == data
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _refused(archive, tmp_path, member, max_bytes=MB):
    target = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as err:
        safe_extract(archive, target, max_bytes=max_bytes)
    assert repr(member) in str(err.value) and archive.name in str(err.value)
    assert not target.exists()
    assert not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    return str(err.value)


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_dotdot_member_is_refused(tmp_path, fmt):
    members = {**GOOD, "set/../../evil.txt": b"owned"}
    archive = (_zip if fmt == "zip" else _tar)(tmp_path / f"a.{fmt}", members)
    assert "'..'" in _refused(archive, tmp_path, "set/../../evil.txt")
    assert not (tmp_path.parent / "evil.txt").exists()


def test_dotdot_that_stays_inside_is_allowed(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {"set/x/../a.txt": b"ok"})
    assert safe_extract(archive, tmp_path / "out", max_bytes=MB) == [tmp_path / "out/set/a.txt"]


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_absolute_member_is_refused(tmp_path, fmt):
    archive = (_zip if fmt == "zip" else _tar)(tmp_path / f"a.{fmt}", {"/tmp/evil.txt": b"owned"})
    assert "absolute" in _refused(archive, tmp_path, "/tmp/evil.txt")


def test_tar_symlink_to_etc_passwd_is_refused(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {**GOOD, "set/passwd": (tarfile.SYMTYPE, "/etc/passwd")})
    message = _refused(archive, tmp_path, "set/passwd")
    assert "/etc/passwd" in message and "outside the target" in message


def test_zip_symlink_to_etc_passwd_is_refused(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"set/passwd": (b"/etc/passwd", stat.S_IFLNK | 0o777)})
    assert "/etc/passwd" in _refused(archive, tmp_path, "set/passwd")


def test_relative_symlink_escaping_is_refused(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {"set/up": (tarfile.SYMTYPE, "../../..")})
    assert "outside the target" in _refused(archive, tmp_path, "set/up")


def test_in_tree_symlink_is_refused_too(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {**GOOD, "set/alias.wav": (tarfile.SYMTYPE, "a.wav")})
    assert "inside the archive" in _refused(archive, tmp_path, "set/alias.wav")


def test_hardlink_to_outside_is_refused(tmp_path):
    members = {**GOOD, "set/shadow": (tarfile.LNKTYPE, "../../etc/shadow")}
    archive = _tar(tmp_path / "a.tgz", members)
    message = _refused(archive, tmp_path, "set/shadow")
    assert "hard link" in message and "outside the target" in message


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_special_members_are_refused(tmp_path, kind):
    archive = _tar(tmp_path / "a.tgz", {**GOOD, "set/dev": (kind, "")})
    _refused(archive, tmp_path, "set/dev")


def test_zip_fifo_is_refused(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"set/fifo": (b"", stat.S_IFIFO | 0o644)})
    _refused(archive, tmp_path, "set/fifo")


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_decompression_bomb_is_refused(tmp_path, fmt):
    members = {**GOOD, "set/zeros.bin": bytes(50 * MB)}
    archive = (_zip if fmt == "zip" else _tar)(tmp_path / f"a.{fmt}", members)
    assert archive.stat().st_size < MB  # tiny on disk, 50 MB declared
    assert "max_bytes" in _refused(archive, tmp_path, "set/zeros.bin")


def test_many_small_members_add_up_to_a_bomb(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {f"set/{i}.bin": bytes(MB // 4) for i in range(8)})
    _refused(archive, tmp_path, "set/4.bin", max_bytes=MB)


def test_refused_tar_leaves_nothing_even_after_writing_members(tmp_path):
    # the bad member comes last, after good files were already written to the hidden folder
    archive = _tar(tmp_path / "a.tgz", {**GOOD, "../evil": b"x"})
    _refused(archive, tmp_path, "../evil")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tgz"]


def test_existing_target_is_never_overwritten(tmp_path):
    archive = _zip(tmp_path / "a.zip", GOOD)
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError):
        safe_extract(archive, tmp_path / "out", max_bytes=MB)


def test_leftover_partial_folder_is_replaced(tmp_path):
    archive = _zip(tmp_path / "a.zip", GOOD)
    (tmp_path / ".out.partial" / "set").mkdir(parents=True)
    (tmp_path / ".out.partial" / "set" / "stale.txt").write_bytes(b"killed halfway")
    safe_extract(archive, tmp_path / "out", max_bytes=MB)
    assert not (tmp_path / "out" / "set" / "stale.txt").exists()
    assert not (tmp_path / ".out.partial").exists()


def test_not_an_archive(tmp_path):
    path = tmp_path / "notes.zip"
    path.write_bytes(b"just some text, not an archive at all" * 20)
    with pytest.raises(ArchiveError, match="neither a zip nor a tar"):
        safe_extract(path, tmp_path / "out", max_bytes=MB)
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_reported_as_damaged(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {"set/noise.bin": bytes(range(256)) * 4096})
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(ArchiveError, match="damaged or truncated"):
        safe_extract(archive, tmp_path / "out", max_bytes=10 * MB)
    assert not (tmp_path / "out").exists()


# --- issue 5: what the tests above leave out ---------------------------------------------------

def test_tar_hardlink_to_an_absolute_path_is_refused(tmp_path):
    archive = _tar(tmp_path / "a.tgz", {**GOOD, "set/shadow": (tarfile.LNKTYPE, "/etc/shadow")})
    message = _refused(archive, tmp_path, "set/shadow")
    assert "hard link to '/etc/shadow' (outside the target)" in message


@pytest.mark.parametrize("fmt", ["zip", "tar"])
def test_a_symlink_chain_is_refused_at_its_first_link(tmp_path, fmt):
    # set/a -> b looks harmless on its own; b -> ../../etc is where the chain leaves the target
    if fmt == "tar":
        archive = _tar(tmp_path / "a.tgz", {**GOOD, "set/a": (tarfile.SYMTYPE, "b"),
                                            "set/b": (tarfile.SYMTYPE, "../../etc")})
    else:
        link = stat.S_IFLNK | 0o777
        archive = _zip(tmp_path / "a.zip", {**GOOD, "set/a": (b"b", link), "set/b": (b"../../etc", link)})
    message = _refused(archive, tmp_path, "set/a")
    assert "symbolic link to 'b' (inside the archive)" in message


@pytest.mark.parametrize("fmt", ["zip", "tar"])
@pytest.mark.parametrize("name, why", [
    ("C:\\x", "absolute"), ("c:/Windows/evil.dll", "absolute"), ("C:evil", "absolute"),
    ("\\x", "absolute"), ("\\\\server\\share\\x", "absolute"), ("set\\..\\..\\evil", "'..'")])
def test_windows_style_absolute_and_backslash_names_are_refused(tmp_path, fmt, name, why):
    archive = (_zip if fmt == "zip" else _tar)(tmp_path / f"a.{fmt}", {**GOOD, name: b"owned"})
    assert why in _refused(archive, tmp_path, name)


def test_a_pax_header_cannot_smuggle_in_an_absolute_path(tmp_path):
    archive = tmp_path / "a.tar"
    with tarfile.open(archive, "w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("set/harmless.txt")  # the ustar name; the pax 'path' record wins
        info.size, info.pax_headers = 5, {"path": str(tmp_path / "evil.txt")}
        tf.addfile(info, io.BytesIO(b"owned"))
    assert "absolute" in _refused(archive, tmp_path, str(tmp_path / "evil.txt"))
    assert not (tmp_path / "evil.txt").exists()


def _zip_declaring(path, name, size, crc=None):
    """Rewrite a zip's local and central headers of one member to declare another size (and CRC)."""
    data = bytearray(path.read_bytes())
    for sig, name_len_at, name_at, size_at, crc_at in ((b"PK\x03\x04", 26, 30, 22, 14),
                                                       (b"PK\x01\x02", 28, 46, 24, 16)):
        at = data.find(sig)
        while at >= 0:
            n = struct.unpack_from("<H", data, at + name_len_at)[0]
            if data[at + name_at:at + name_at + n] == name.encode():
                struct.pack_into("<I", data, at + size_at, size)
                if crc is not None:
                    struct.pack_into("<I", data, at + crc_at, crc)
            at = data.find(sig, at + 4)
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as zf:
        assert zf.getinfo(name).file_size == size
    return path


def test_a_zip_bomb_declared_small_is_refused_as_damaged(tmp_path):
    archive = _zip(tmp_path / "a.zip", {**GOOD, "set/zeros.bin": bytes(50 * MB)})
    _zip_declaring(archive, "set/zeros.bin", 1000)  # the headers now say 1000 bytes; 50 MB inflate
    with pytest.raises(ArchiveError, match="damaged or truncated.*CRC"):
        safe_extract(archive, tmp_path / "out", max_bytes=MB)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_a_zip_bomb_with_a_consistent_lie_yields_only_the_declared_bytes(tmp_path):
    archive = _zip(tmp_path / "a.zip", {**GOOD, "set/zeros.bin": bytes(50 * MB)})
    _zip_declaring(archive, "set/zeros.bin", 1000, crc=zlib.crc32(bytes(1000)))
    safe_extract(archive, tmp_path / "out", max_bytes=MB)
    assert (tmp_path / "out/set/zeros.bin").stat().st_size == 1000
    assert sum(p.stat().st_size for p in (tmp_path / "out").rglob("*") if p.is_file()) < MB


@pytest.mark.parametrize("fmt", ["zip", "tar"])
@pytest.mark.parametrize("name", ["set/..", "."])
def test_a_file_member_naming_the_target_itself_is_refused(tmp_path, fmt, name):
    archive = (_zip if fmt == "zip" else _tar)(tmp_path / f"a.{fmt}", {**GOOD, name: b"owned"})
    assert "names the target folder itself" in _refused(archive, tmp_path, name)


def _tar_in_order(path, members):
    """A tar of (name, bytes or None for a folder) in this exact order, repeats allowed."""
    with tarfile.open(path, "w") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("members, culprit, why", [
    ([("set/a.wav", b"real"), ("set/a.wav", b"swapped in")], "set/a.wav", "would silently replace the first"),
    ([("set", b"a file"), ("set/a.wav", b"x")], "set/a.wav", "lies under 'set', which the archive holds as a file"),
    ([("set/sub/b.txt", b"x"), ("set/sub", b"a file")], "set/sub", "both a file and a folder"),
    ([("set/a.wav", b"x"), ("set/a.wav", None)], "set/a.wav", "both a file and a folder"),
])
def test_a_member_whose_place_is_taken_is_refused(tmp_path, members, culprit, why):
    archive = _tar_in_order(tmp_path / "a.tar", members)
    assert why in _refused(archive, tmp_path, culprit)


def test_a_zip_repeating_a_file_name_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        zf.writestr("set/a.wav", b"real")
        zf.writestr("set/a.wav", b"swapped in")
    assert "would silently replace the first" in _refused(archive, tmp_path, "set/a.wav")


def test_repeated_folder_entries_are_harmless(tmp_path):
    archive = _tar_in_order(tmp_path / "a.tar", [("set", None), ("set/a.wav", b"x"), ("set", None),
                                                 ("set/sub", None), ("set/sub/b.txt", b"y")])
    files = safe_extract(archive, tmp_path / "out", max_bytes=MB)
    assert sorted(files) == [tmp_path / "out/set/a.wav", tmp_path / "out/set/sub/b.txt"]
