"""Safe extraction of uploaded ZIP archives.

An upload is hostile until proven otherwise: members may try to escape the
target folder (``../``, absolute paths, symlinks), expand to terabytes (ZIP
bombs), or simply not be a ZIP. Every limit is a parameter taken from
``ApiSettings`` so a site can change it; every refusal is an
``UnsafeArchiveError`` whose message a user can act on.
"""

from __future__ import annotations

import logging
import shutil
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from series_selector.errors import UnsafeArchiveError

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    """Upper bounds for one archive; see ``ApiSettings`` for the defaults and why."""

    max_members: int
    max_uncompressed_bytes: int
    max_compression_ratio: float

    def __post_init__(self) -> None:
        if self.max_members <= 0 or self.max_uncompressed_bytes <= 0:
            raise ValueError("ArchiveLimits must be positive")
        if self.max_compression_ratio <= 1:
            raise ValueError("ArchiveLimits.max_compression_ratio must exceed 1")


@dataclass(frozen=True, slots=True)
class ExtractedArchive:
    """What ``extract_zip`` wrote: the folder and how many files went into it."""

    root: Path
    n_files: int
    n_bytes: int
    skipped: tuple[str, ...] = ()


def _safe_member_path(name: str) -> PurePosixPath | None:
    """The member's relative path, or None when it must not be written.

    ZIP names use '/', but some writers put '\\'; both are separators here.
    """
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts:
        return None
    if parts[0] == "/" or (len(parts[0]) == 2 and parts[0][1] == ":"):
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path")
    if any(p == ".." for p in parts):
        raise UnsafeArchiveError(f"archive member {name!r} tries to leave the archive folder")
    clean = [p for p in parts if p not in ("", ".")]
    if not clean or clean[0] == "__MACOSX" or clean[-1].startswith("._"):
        return None  # macOS resource forks: never DICOM
    return PurePosixPath(*clean)


def _checked_member(member: zipfile.ZipInfo, limits: ArchiveLimits) -> PurePosixPath | None:
    """The member's safe relative path (None: skip it), from the central directory alone."""
    rel = _safe_member_path(member.filename)
    if rel is None:
        return None
    if stat.S_ISLNK(member.external_attr >> 16):
        raise UnsafeArchiveError(f"archive member {member.filename!r} is a symbolic link")
    if member.flag_bits & 0x1:
        raise UnsafeArchiveError(
            f"archive member {member.filename!r} is encrypted; send an unencrypted ZIP"
        )
    declared_ratio = member.file_size / max(member.compress_size, 1)
    if member.file_size > _CHUNK and declared_ratio > limits.max_compression_ratio:
        raise UnsafeArchiveError(
            f"archive member {member.filename!r} declares a {declared_ratio:.0f}x expansion "
            f"(at most {limits.max_compression_ratio:.0f}x): refused as a ZIP bomb"
        )
    return rel


def extract_zip(archive: Path, target: Path, limits: ArchiveLimits) -> ExtractedArchive:
    """Extract ``archive`` into the empty folder ``target`` within ``limits``.

    Everything the central directory declares (count, total size, each
    member's compression ratio, names, links, encryption) is checked before
    a single byte is written; the bytes actually written are counted again
    while streaming, because a crafted archive can lie about its sizes.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise UnsafeArchiveError(f"the upload is not a valid ZIP archive ({exc})") from exc
    except OSError as exc:
        raise UnsafeArchiveError(f"the upload could not be read as a ZIP archive ({exc})") from exc

    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > limits.max_members:
            raise UnsafeArchiveError(
                f"the archive holds {len(members)} files; at most {limits.max_members} are accepted"
            )
        declared = sum(m.file_size for m in members)
        if declared > limits.max_uncompressed_bytes:
            raise UnsafeArchiveError(
                f"the archive expands to {declared / 1e6:.0f} MB; at most "
                f"{limits.max_uncompressed_bytes / 1e6:.0f} MB are accepted"
            )
        planned = [(m, rel) for m in members
                   if (rel := _checked_member(m, limits)) is not None]
        skipped = [m.filename for m in members if all(m is not p for p, _ in planned)]
        target.mkdir(parents=True, exist_ok=True)
        written_total = 0
        n_files = 0
        for member, rel in planned:
            ratio_limit = limits.max_compression_ratio * max(member.compress_size, 1)
            dest = target.joinpath(*rel.parts)
            if not dest.resolve().is_relative_to(target.resolve()):
                raise UnsafeArchiveError(
                    f"archive member {member.filename!r} tries to leave the archive folder"
                )
            dest.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            try:
                with zf.open(member) as src, open(dest, "xb") as out:
                    while chunk := src.read(_CHUNK):
                        written += len(chunk)
                        written_total += len(chunk)
                        if written > ratio_limit and written > _CHUNK:
                            raise UnsafeArchiveError(
                                f"archive member {member.filename!r} expands more than "
                                f"{limits.max_compression_ratio:.0f}x: refused as a ZIP bomb"
                            )
                        if written_total > limits.max_uncompressed_bytes:
                            raise UnsafeArchiveError(
                                "the archive expands beyond "
                                f"{limits.max_uncompressed_bytes / 1e6:.0f} MB: refused"
                            )
                        out.write(chunk)
            except FileExistsError:
                raise UnsafeArchiveError(
                    f"archive member {member.filename!r} appears twice"
                ) from None
            except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
                raise UnsafeArchiveError(
                    f"archive member {member.filename!r} is corrupt ({exc})"
                ) from exc
            except NotImplementedError as exc:
                raise UnsafeArchiveError(
                    f"archive member {member.filename!r} uses an unsupported compression ({exc})"
                ) from exc
            n_files += 1
    if n_files == 0:
        raise UnsafeArchiveError("the archive is empty (no files in it)")
    logger.info("extracted %d files (%d bytes) from upload", n_files, written_total)
    return ExtractedArchive(target, n_files, written_total, tuple(skipped))


def remove_tree(path: Path) -> None:
    """Delete a temporary folder, never raising: cleanup must not hide the real error."""
    shutil.rmtree(path, ignore_errors=True)
