"""`cadvlm fetch`: the one step that uses the network. A Hugging Face hub repository into a folder.

Everything else in the project reads local folders only; this command is how a dataset set (an
OpenECAD release) or a model repository (a pretrained base, an OpenECAD checkpoint) gets there:

    cadvlm fetch Yuki-Kokomi/OpenECADv2-Datasets --type dataset \\
        --include 'OpenECADv2_100k_directout_1k_*.7z' -o data/raw/openecad
    cadvlm fetch Yuki-Kokomi/OpenECADv2-CLIP-0.55B -o models/hub/openecad-clip-0.55b

- The files come through `huggingface_hub.snapshot_download` into `-o` (`local_dir`; its own
  metadata in `<out>/.cache/huggingface/`), restricted by `--include` patterns (`allow_patterns`).
  A run that was cut short resumes file by file: complete files are kept and not asked for again,
  the file that was being written comes again (huggingface_hub 2.x retries within a run with HTTP
  ranges but drops a partial file when the process dies). `HF_ENDPOINT` and `HF_TOKEN` are
  honoured as huggingface_hub honours them.
- `.7z` archives (OpenECAD ships its sets so; py7zr) and `.zip` files unpack beside themselves;
  the archives stay (they are what makes a rerun free), member paths are checked (no absolute
  path, no `..`), and an archive is unpacked into a temporary folder first, so a killed run leaves
  no half-unpacked set.
- Idempotent: `<out>/.cadvlm_fetch.json` records the repository, the commit it resolved to, the
  patterns, each file's size and each archive's SHA-256 and members. A second run asks the hub
  which commit the revision names (one request; none when `--revision` is a commit hash already
  recorded) and, when nothing changed and every file is there, downloads and unpacks nothing.

Facts about huggingface_hub's behaviour are from its documentation and the source installed here
(`snapshot_download`, `HfApi.repo_info`, `utils.filter_repo_objects`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

MARKER = ".cadvlm_fetch.json"
MARKER_VERSION = 1
ARCHIVES = (".7z", ".zip")
_COMMIT = re.compile(r"^[0-9a-f]{40}$")
_TMP = ".cadvlm_unpack_tmp"


class FetchError(RuntimeError):
    """A fetch that cannot go on: nothing matches, an unsafe archive, the hub refuses."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _safe_member(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return bool(name) and not name.startswith(("/", "\\")) and ":" not in parts[0] and ".." not in parts


def _extract(archive: Path, tmp: Path) -> None:
    """All members of a .7z or .zip archive into tmp (after checking every member's path)."""
    if archive.suffix.lower() == ".zip":
        import zipfile

        with zipfile.ZipFile(archive) as z:
            bad = [n for n in z.namelist() if not _safe_member(n)]
            if bad:
                raise FetchError(f"{archive.name}: unsafe member paths {bad[:3]}")
            z.extractall(tmp)
        return
    import py7zr

    with py7zr.SevenZipFile(archive, "r") as z:
        bad = [n for n in z.getnames() if not _safe_member(n)]
        if bad:
            raise FetchError(f"{archive.name}: unsafe member paths {bad[:3]}")
        z.extractall(path=tmp)


def unpack(archive: Path, prev: dict | None = None) -> tuple[dict, bool]:
    """Unpack `archive` beside itself unless `prev` (its marker entry) says it already is.

    Returns (its marker entry, whether it was unpacked now). Unchanged means same size and
    modification time, or else the same SHA-256, and every member recorded still there.
    """
    dest = archive.parent
    st = archive.stat()
    members_there = prev is not None and all((dest / m).is_file() for m in prev.get("files", []))
    if members_there and prev.get("size") == st.st_size and prev.get("mtime_ns") == st.st_mtime_ns:
        return prev, False
    digest = _sha256(archive)
    if members_there and prev.get("sha256") == digest:
        return dict(prev, size=st.st_size, mtime_ns=st.st_mtime_ns), False
    tmp = dest / _TMP
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        _extract(archive, tmp)
        files = []
        for root, _, names in os.walk(tmp):
            for n in names:
                src = Path(root) / n
                if src.is_symlink():  # an archive's link could point anywhere: not followed, not kept
                    continue
                rel = src.relative_to(tmp).as_posix()
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest / rel)
                files.append(rel)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"sha256": digest, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "files": sorted(files)}, True


def _read_marker(out: Path) -> dict:
    try:
        m = json.loads((out / MARKER).read_text(encoding="utf-8"))
        return m if isinstance(m, dict) and m.get("version") == MARKER_VERSION else {}
    except (OSError, ValueError):
        return {}


def _complete(out: Path, marker: dict) -> bool:
    """Every file the marker lists is there with its size, and every archive's members too."""
    for rel, size in marker.get("files", {}).items():
        p = out / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    return all((out / m).is_file() for a in marker.get("archives", {}).values() for m in a.get("files", []))


def fetch(repo_id: str, out, repo_type: str = "dataset", revision: str | None = None,
          include: list[str] | None = None, unpack_archives: bool = True, log=print) -> dict:
    """Bring `repo_id` (its files matching `include`) into `out`; returns what was done."""
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    patterns = sorted(include) if include else None
    marker = _read_marker(out)
    same_request = (marker.get("repo_id"), marker.get("repo_type"), marker.get("patterns")) == (
        repo_id, repo_type, patterns)
    if (same_request and revision and _COMMIT.match(revision) and marker.get("commit") == revision
            and _complete(out, marker)):
        log(f"{out}: {repo_id} at {revision[:12]} is complete (nothing asked of the hub)")
        return {"commit": revision, "downloaded": 0, "unpacked": 0, "files": len(marker["files"]), "asked_hub": False}

    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import filter_repo_objects

    info = HfApi().repo_info(repo_id, repo_type=repo_type, revision=revision)
    commit = info.sha
    files = sorted(filter_repo_objects([s.rfilename for s in info.siblings or []], allow_patterns=patterns))
    if not files:
        raise FetchError(f"{repo_id} ({repo_type}, {commit[:12]}): no file matches {patterns or 'anything'}")
    before = {f: (out / f).stat().st_mtime_ns for f in files if (out / f).is_file()}
    unchanged = same_request and marker.get("commit") == commit and _complete(out, marker)
    if not unchanged:
        log(f"fetching {len(files)} file(s) of {repo_id} at {commit[:12]} into {out}")
        snapshot_download(repo_id, repo_type=repo_type, revision=commit, local_dir=out, allow_patterns=patterns)
    sizes = {f: (out / f).stat().st_size for f in files}
    downloaded = sum(1 for f in files if before.get(f) != (out / f).stat().st_mtime_ns)

    archives = dict(marker.get("archives", {})) if same_request else {}
    unpacked = 0
    if unpack_archives:
        for f in files:
            if f.lower().endswith(ARCHIVES):
                entry, fresh = unpack(out / f, archives.get(f))
                archives[f] = entry
                if fresh:
                    unpacked += 1
                    log(f"unpacked {f}: {len(entry['files'])} file(s)")
    new = {"version": MARKER_VERSION, "repo_id": repo_id, "repo_type": repo_type, "revision": revision,
           "commit": commit, "patterns": patterns, "files": sizes,
           "archives": {k: v for k, v in archives.items() if k in sizes}}
    tmp = out / (MARKER + ".tmp")
    tmp.write_text(json.dumps(new, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(out / MARKER)
    log(f"{out}: {len(files)} file(s) at {commit[:12]}; downloaded {downloaded}, unpacked {unpacked} archive(s)")
    return {"commit": commit, "downloaded": downloaded, "unpacked": unpacked, "files": len(files), "asked_hub": True}


def add_arguments_fetch(p) -> None:
    p.add_argument("repo_id", help="hub repository, e.g. Yuki-Kokomi/OpenECADv2-Datasets")
    p.add_argument("-o", "--out", type=Path, required=True, help="local folder (created; reruns reuse it)")
    p.add_argument("--type", dest="repo_type", choices=("dataset", "model"), default="dataset",
                   help="repository type (default: dataset)")
    p.add_argument("--revision", help="branch, tag or commit (default: the main branch)")
    p.add_argument("--include", action="append", metavar="PATTERN",
                   help="only files matching this glob (repeatable), e.g. 'OpenECADv2_100k_*.7z'")
    p.add_argument("--no-unpack", action="store_true", help="keep .7z/.zip archives packed")


def cmd_fetch(args) -> int:
    try:
        fetch(args.repo_id, args.out, args.repo_type, args.revision, args.include, not args.no_unpack)
    except FetchError as exc:
        print(f"cadvlm fetch: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the hub's errors (no such repo, no network, gated) say what happened
        print(f"cadvlm fetch: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    return 0
