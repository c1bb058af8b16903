"""Where results' files live, for how long, and the only way to reach them.

Why an in-memory registry: no filesystem path is ever built from what a client sends. Ids are
made here (`secrets.token_hex`), each maps to the folder made for it, and a file is reached by a
name from `FILES`, a fixed allow-list that maps the public name to the file on disk. A GET with
an unknown id, an expired id or a name off the list is a 404, whatever its characters. Expired
entries are dropped from the registry first (so they are unreachable at once), then their
folders are removed by the sweeper, off the event loop.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# public name -> file written by the build (build_outputs writes part_views.png)
FILES = {
    "part.step": "part.step",
    "part.stl": "part.stl",
    "part.glb": "part.glb",
    "views.png": "part_views.png",
    "input.png": "input.png",
    "part.py": "part.py",
    "answer.txt": "answer.txt",
    "result.json": "result.json",
    "results.zip": "results.zip",
}
MEDIA = {".step": "application/step", ".stl": "model/stl", ".glb": "model/gltf-binary", ".png": "image/png",
         ".py": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8", ".json": "application/json",
         ".zip": "application/zip"}
ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Entry:
    folder: Path
    expires: float
    kind: str  # "result" | "job"


class ResultStore:
    def __init__(self, root: Path | None, ttl_s: float):
        base = Path(root) if root is not None else None
        if base is not None:
            base.mkdir(parents=True, exist_ok=True)
        # a folder of its own per server run: nothing of another run or user is ever touched
        self.root = Path(tempfile.mkdtemp(prefix="cadvlm-serve-", dir=base))
        self.ttl = float(ttl_s)
        self._entries: dict[str, Entry] = {}
        self._lock = threading.Lock()
        self.removed = 0

    def create(self, kind: str = "result") -> tuple[str, Path]:
        """A new id and its empty folder."""
        rid = secrets.token_hex(16)
        folder = self.root / rid
        folder.mkdir()
        with self._lock:
            self._entries[rid] = Entry(folder, time.monotonic() + self.ttl, kind)
        return rid, folder

    def folder(self, rid: str, kind: str | None = None) -> Path | None:
        """The folder of a live entry, or None (unknown, expired, malformed id or another kind)."""
        if not isinstance(rid, str) or not ID_RE.match(rid):
            return None
        with self._lock:
            e = self._entries.get(rid)
        if e is None or e.expires <= time.monotonic() or (kind is not None and e.kind != kind):
            return None
        return e.folder

    def file(self, rid: str, name: str, kind: str | None = None) -> Path | None:
        """The file behind a public name of a live entry, or None."""
        disk_name = FILES.get(name)
        folder = self.folder(rid, kind)
        if disk_name is None or folder is None:
            return None
        path = folder / disk_name
        return path if path.is_file() else None

    def write_json(self, rid: str, data: dict) -> None:
        folder = self.folder(rid)
        if folder is not None:
            tmp = folder / ".result.json.tmp"
            tmp.write_text(json.dumps(data), encoding="utf-8")
            tmp.replace(folder / "result.json")

    def read_json(self, rid: str) -> dict | None:
        path = self.file(rid, "result.json", kind="result")
        return json.loads(path.read_text(encoding="utf-8")) if path else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def sweep(self, now: float | None = None) -> int:
        """Remove expired entries and their folders (blocking: call it from a thread). How many."""
        now = time.monotonic() if now is None else now
        with self._lock:
            gone = [rid for rid, e in self._entries.items() if e.expires <= now]
            folders = [self._entries.pop(rid).folder for rid in gone]
        for f in folders:
            shutil.rmtree(f, ignore_errors=True)
        self.removed += len(folders)
        return len(folders)

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
        shutil.rmtree(self.root, ignore_errors=True)
