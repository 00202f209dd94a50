"""The one module that writes the archive's files.

A manifest in the output folder records, per file, the hash of the inputs it was built from and
its size. A file whose inputs did not change is not even rendered; a rendered file identical to
the one on disk is not rewritten. So a rebuild with nothing changed writes nothing, not even the
manifest, and a CDN or rsync sees no new mtimes. Files the manifest never listed are never
deleted: the output folder may hold an operator's own files (CNAME, robots.txt).

A build also leaves a record of its inputs (inputs.py) beside the manifest, written last. The
writer deletes it before it changes anything in the folder, so a build that fails half-way, or
an issue published before its send, never leaves a record vouching for files it changed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsletter.errors import NewsletterError

MANIFEST = ".archive-manifest.json"
MANIFEST_VERSION = 1
INPUTS = ".archive-inputs.json"
INPUTS_VERSION = 1


class OutputError(NewsletterError):
    """The output folder cannot be used or cleaned."""


@dataclass(frozen=True)
class WriteCounts:
    written: int
    unchanged: int
    removed: int


def read_manifest(out: Path) -> dict[str, Any]:
    """The manifest of a previous build, or an empty one (missing or unreadable: full rebuild)."""
    try:
        data = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"files": {}, "urls": {}}
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return {"files": {}, "urls": {}}
    return {"files": dict(data.get("files") or {}), "urls": dict(data.get("urls") or {})}


def read_record(out: Path) -> dict[str, Any]:
    """The inputs record of the last build (inputs.py), or an empty one."""
    try:
        data = json.loads((out / INPUTS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != INPUTS_VERSION:
        return {}
    return data


def intact(out: Path, manifest: dict[str, Any]) -> bool:
    """Whether every file of the manifest is in the folder with the size it was written with."""
    for file, entry in manifest["files"].items():
        try:
            if os.stat(out / file).st_size != entry.get("size"):
                return False
        except OSError:
            return False
    return True


def clean_output(out: Path) -> None:
    """Remove a previous build entirely; refuse a folder this tool did not build."""
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError(f"{out}: not a folder")
    if not (out / MANIFEST).exists() and any(out.iterdir()):
        raise OutputError(
            f"{out}: refusing to clean a non-empty folder that `newsletter archive build` "
            f"did not create (no {MANIFEST})"
        )
    shutil.rmtree(out)


def check_writable(out: Path) -> None:
    """OutputError unless this process can create the output folder and write into it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".tmp-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"cannot write the archive folder {out} "
                          f"({exc.strerror or exc})") from None


class SiteWriter:
    """Writes files under `out` only when their content changes, and removes stale ones."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.previous = read_manifest(out)
        self.files: dict[str, dict[str, Any]] = {}
        self.written = 0
        self.unchanged = 0
        self.written_files: list[str] = []
        self.folders: set[Path] = set()
        self.changing = False

    def _target(self, file: str) -> Path:
        target = (self.out / file).resolve()
        if not target.is_relative_to(self.out.resolve()):
            raise OutputError(f"refusing to write outside the output folder: {file}")
        return target

    def is_current(self, file: str, input_hash: str) -> bool:
        """True when the file on disk was built from these very inputs (no need to render)."""
        entry = self.previous["files"].get(file)
        if not entry or entry.get("input") != input_hash:
            return False
        try:
            return (self.out / file).stat().st_size == entry.get("size")
        except OSError:
            return False

    def keep(self, file: str) -> None:
        """Record an up-to-date file as part of this build without touching it."""
        self.files[file] = self.previous["files"][file]
        self.unchanged += 1

    def write(self, file: str, data: bytes, input_hash: str) -> bool:
        """Write `data` unless the file already holds exactly these bytes; True if written."""
        target = self._target(file)
        self.files[file] = {"input": input_hash, "size": len(data)}
        try:
            if target.stat().st_size == len(data) and target.read_bytes() == data:
                self.unchanged += 1
                return False
        except OSError:
            pass
        if target.parent not in self.folders:
            target.parent.mkdir(parents=True, exist_ok=True)
            self.folders.add(target.parent)
        self._change()
        _put(target, data)
        self.written += 1
        self.written_files.append(file)
        return True

    def _change(self) -> None:
        """Before the first change to the folder: the last build's record no longer holds."""
        if not self.changing:
            self.changing = True
            (self.out / INPUTS).unlink(missing_ok=True)

    def finish(self, urls: dict[str, str],
               record: dict[str, Any] | None = None) -> WriteCounts:
        """Remove files of the previous build that are no longer planned; save the manifest,
        then the record of the inputs the folder is now built from (if given)."""
        removed = 0
        for file in sorted(set(self.previous["files"]) - set(self.files)):
            target = self._target(file)
            if target.is_file():
                self._change()
                target.unlink()
                removed += 1
            self._prune(target.parent)
        # Published URLs stay pinned even if the issue disappears and comes back later.
        all_urls = {**self.previous["urls"], **urls}
        if self.files != self.previous["files"] or all_urls != self.previous["urls"]:
            self.out.mkdir(parents=True, exist_ok=True)
            self._change()
            self._save_manifest(self.files, all_urls)
        if record is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            data = {"version": INPUTS_VERSION, **record}
            _put(self._target(INPUTS), json.dumps(data, sort_keys=True).encode())
        return WriteCounts(self.written, self.unchanged, removed)

    def abandon(self) -> None:
        """A build that stops half-way: the manifest takes the new entries of the files it
        wrote, so the next build does not take them for what they were before."""
        if not self.written_files:
            return
        files = {**self.previous["files"],
                 **{file: self.files[file] for file in self.written_files}}
        self._save_manifest(files, self.previous["urls"])

    def _save_manifest(self, files: dict[str, Any], urls: dict[str, str]) -> None:
        manifest = {"version": MANIFEST_VERSION, "files": files, "urls": urls}
        _put(self._target(MANIFEST), json.dumps(manifest, sort_keys=True).encode())

    def _prune(self, folder: Path) -> None:
        root = self.out.resolve()
        while folder.resolve() != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def _put(target: Path, data: bytes) -> None:
    """Replace a file atomically, so a web server never serves half a page."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
