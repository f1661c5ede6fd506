"""Safe ZIP extraction: traversal, bombs, links, corrupt and empty archives."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from series_selector.archive import ArchiveLimits, extract_zip
from series_selector.errors import UnsafeArchiveError

LIMITS = ArchiveLimits(max_members=100, max_uncompressed_bytes=50_000_000,
                       max_compression_ratio=200.0)


def _zip(path: Path, members: dict[str, bytes], **kw: int) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, **kw) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_nested_folders_are_kept(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"study/series1/IM0001": b"x" * 10, "DICOMDIR": b"y"})
    out = extract_zip(archive, tmp_path / "out", LIMITS)
    assert out.n_files == 2
    assert (tmp_path / "out" / "study" / "series1" / "IM0001").read_bytes() == b"x" * 10


@pytest.mark.parametrize("name", ["../evil.dcm", "a/../../evil.dcm", "/etc/evil.dcm",
                                  "..\\..\\evil.dcm", "C:/evil.dcm"])
def test_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    archive = _zip(tmp_path / "a.zip", {name: b"x"})
    with pytest.raises(UnsafeArchiveError, match="absolute path|leave the archive"):
        extract_zip(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "evil.dcm").exists()


def test_zip_bomb_is_refused_by_ratio(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"zeros.dcm": b"\0" * 30_000_000})
    with pytest.raises(UnsafeArchiveError, match="ZIP bomb"):
        extract_zip(archive, tmp_path / "out", LIMITS)


def test_total_size_limit(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "big.zip", {f"f{i}": b"\0" * 1000 for i in range(20)})
    limits = ArchiveLimits(max_members=100, max_uncompressed_bytes=10_000,
                           max_compression_ratio=1e9)
    with pytest.raises(UnsafeArchiveError, match="expands to"):
        extract_zip(archive, tmp_path / "out", limits)


def test_lying_sizes_are_caught_while_streaming(tmp_path: Path) -> None:
    """A central directory that under-declares sizes must not get past the byte count."""
    archive = _zip(tmp_path / "lie.zip", {"a.dcm": b"\0" * 200_000})
    data = bytearray(archive.read_bytes())
    # Patch the declared uncompressed size (central directory, offset 24) to 10 bytes.
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 24:cd + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    limits = ArchiveLimits(max_members=100, max_uncompressed_bytes=100_000,
                           max_compression_ratio=1e9)
    with pytest.raises(UnsafeArchiveError):
        extract_zip(archive, tmp_path / "out", limits)


def test_too_many_members(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"f{i}": b"x" for i in range(101)})
    with pytest.raises(UnsafeArchiveError, match="at most 100"):
        extract_zip(archive, tmp_path / "out", LIMITS)


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match="symbolic link"):
        extract_zip(archive, tmp_path / "out", LIMITS)


def test_not_a_zip_and_empty_zip(tmp_path: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip")
    with pytest.raises(UnsafeArchiveError, match="not a valid ZIP"):
        extract_zip(junk, tmp_path / "o1", LIMITS)
    empty = _zip(tmp_path / "empty.zip", {})
    with pytest.raises(UnsafeArchiveError, match="empty"):
        extract_zip(empty, tmp_path / "o2", LIMITS)


def test_truncated_zip(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "t.zip", {f"f{i}": bytes(range(256)) * 400 for i in range(3)})
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(UnsafeArchiveError):
        extract_zip(archive, tmp_path / "out", LIMITS)


def test_macos_resource_forks_are_skipped(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "mac.zip", {"s/IM1": b"x", "__MACOSX/s/._IM1": b"r"})
    out = extract_zip(archive, tmp_path / "out", LIMITS)
    assert out.n_files == 1 and out.skipped == ("__MACOSX/s/._IM1",)


def test_bomb_is_refused_from_the_central_directory_before_writing(tmp_path: Path) -> None:
    """Issue 15: the declared ratio is checked up front; nothing is written (was 434 MB)."""
    from tests.fuzz.hostile import write_zip_bomb

    archive = write_zip_bomb(tmp_path / "bomb.zip", 40_000_000)
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError, match="ZIP bomb"):
        extract_zip(archive, out, LIMITS)
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) if out.exists() else 0
    assert written == 0


def test_a_traversal_member_after_good_ones_writes_nothing(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "a.zip", {"ok/IM1": b"x" * 100, "../evil": b"y"})
    with pytest.raises(UnsafeArchiveError, match="leave the archive"):
        extract_zip(archive, tmp_path / "out", LIMITS)
    assert not (tmp_path / "out" / "ok" / "IM1").exists()
