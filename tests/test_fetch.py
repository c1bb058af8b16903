"""`cadvlm fetch` offline, against a stand-in for the Hugging Face hub on the loopback address.

The stand-in answers just what `huggingface_hub.snapshot_download` asks (read from the installed
huggingface_hub: `HfApi.repo_info` -> GET /api/{type}s/{repo}/revision/{rev} with `sha` and
`siblings`; `list_repo_tree` -> GET /api/{type}s/{repo}/tree/{rev}; per file HEAD and GET on
/[datasets/]{repo}/resolve/{rev}/{path} with X-Repo-Commit, ETag and Content-Length, Range for
resuming) and counts every request. The command runs in a subprocess with HF_ENDPOINT pointing at
it, as a user would run it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from PIL import Image

py7zr = pytest.importorskip("py7zr")


class Hub:
    """Repositories {(type, id): {"sha": commit, "files": {path: bytes}}} and the requests seen."""

    def __init__(self):
        self.repos: dict = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def set_repo(self, repo_type: str, repo_id: str, files: dict[str, bytes]) -> str:
        sha = hashlib.sha1(json.dumps(sorted((k, hashlib.sha256(v).hexdigest()) for k, v in files.items()))
                           .encode()).hexdigest()
        self.repos[(repo_type, repo_id)] = {"sha": sha, "files": dict(files)}
        return sha

    def count(self, method: str | None = None, part: str = "") -> int:
        return sum(1 for m, p in self.requests if (method is None or m == method) and part in p)


def _handler(hub: Hub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _repo(self, repo_type, repo_id, rev):
            repo = hub.repos.get((repo_type, repo_id))
            if repo is None or rev not in ("main", repo["sha"]):
                return None
            return repo

        def _send(self, code, body=b"", headers=None, head=False):
            self.send_response(code)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head=False):
            path = unquote(urlparse(self.path).path)
            with hub.lock:
                hub.requests.append((self.command, path))
            parts = path.strip("/").split("/")
            if parts[0] == "api" and len(parts) == 4:  # repo info without a revision: the default branch
                parts += ["revision", "main"]
            if parts[0] == "api" and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                repo_type, repo_id, rev = parts[1][:-1], f"{parts[2]}/{parts[3]}", parts[5]
                repo = self._repo(repo_type, repo_id, rev)
                if repo is None:
                    return self._send(404, b'{"error": "Repository not found"}',
                                      {"X-Error-Code": "RepositoryNotFound"})
                if parts[4] == "revision":
                    body = {"id": repo_id, "sha": repo["sha"], "private": False,
                            "siblings": [{"rfilename": f} for f in sorted(repo["files"])]}
                else:
                    body = [{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                            for f, b in sorted(repo["files"].items())]
                return self._send(200, json.dumps(body).encode(), {"Content-Type": "application/json"})
            repo_type = "dataset" if parts[0] == "datasets" else "model"
            parts = parts[1:] if repo_type == "dataset" else parts
            if len(parts) >= 5 and parts[2] == "resolve":
                repo = self._repo(repo_type, f"{parts[0]}/{parts[1]}", parts[3])
                name = "/".join(parts[4:])
                if repo is None or name not in repo["files"]:
                    return self._send(404, b"", {"X-Error-Code": "EntryNotFound"})
                body = repo["files"][name]
                headers = {"X-Repo-Commit": repo["sha"], "ETag": f'"{hashlib.sha256(body).hexdigest()}"',
                           "Accept-Ranges": "bytes"}
                rng = self.headers.get("Range")
                if rng and not head:  # bytes=N- : the rest of a download cut short
                    start = int(rng.split("=")[1].split("-")[0])
                    headers["Content-Range"] = f"bytes {start}-{len(body) - 1}/{len(body)}"
                    return self._send(206, body[start:], headers)
                if head:
                    self.send_response(200)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    return None
                return self._send(200, body, headers)
            return self._send(404)

        def do_GET(self):
            self._route()

        def do_HEAD(self):
            self._route(head=True)

    return Handler


@pytest.fixture
def hub():
    h = Hub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(h))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    h.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    yield h
    server.shutdown()
    server.server_close()


def _jpeg(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, shade, shade)).save(buf, "JPEG")
    return buf.getvalue()


def _seven_zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(data, name)
    return buf.getvalue()


def _openecad_repo() -> dict[str, bytes]:
    """A dataset repository in OpenECAD's release layout: a data archive and an images archive per set."""
    records = [{"id": f"0000000{i}", "image": f"0000000{i}.jpg", "conversations": [
        {"from": "human", "value": "<image>\nThis image is a view of a 3D model from a certain angle."},
        {"from": "gpt", "value": "Of course, here are the codes:\n```python\n```"}]} for i in range(3)]
    return {
        "README.md": b"# a stand-in\n",
        "Small_1k_data.7z": _seven_zip({"data.json": json.dumps(records).encode()}),
        "Small_1k_images.7z": _seven_zip({f"images/0000000{i}.jpg": _jpeg(40 * i) for i in range(3)}),
        "Other_2k_data.7z": _seven_zip({"data.json": b"[]"}),
    }


def _fetch(hub: Hub, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and not k.startswith("HF_")}
    env.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1", PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"))
    return subprocess.run([sys.executable, "-m", "cadvlm.cli", "fetch", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)


def test_fetch_downloads_unpacks_and_a_second_run_does_nothing(hub, tmp_path):
    files = _openecad_repo()
    sha = hub.set_repo("dataset", "someone/OpenECAD-Standin", files)
    out = tmp_path / "openecad"
    args = ("someone/OpenECAD-Standin", "--type", "dataset", "--include", "Small_1k_*", "-o", str(out))
    r = _fetch(hub, tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert hub.count("GET", "/resolve/") == 2  # the two matching archives, nothing else
    assert (out / "data.json").is_file() and json.loads((out / "data.json").read_text())[2]["id"] == "00000002"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["00000000.jpg", "00000001.jpg", "00000002.jpg"]
    assert not (out / "Other_2k_data.7z").exists() and not (out / "README.md").exists()
    marker = json.loads((out / ".cadvlm_fetch.json").read_text())
    assert marker["commit"] == sha and set(marker["files"]) == {"Small_1k_data.7z", "Small_1k_images.7z"}
    images = marker["archives"]["Small_1k_images.7z"]
    assert images["files"] == ["images/00000000.jpg", "images/00000001.jpg", "images/00000002.jpg"]
    assert images["sha256"] == hashlib.sha256((out / "Small_1k_images.7z").read_bytes()).hexdigest()

    # the unpacked set reads as an OpenECAD set
    from cadvlm.extract_openecad import picture_root, read_records, records_file

    records, refused = read_records(records_file(out))
    assert len(records) == 3 and not refused and picture_root(out, records) == out / "images"

    # second run: one question to the hub (which commit is main?), no download, no unpacking
    (out / "data.json").touch()
    stamp = (out / "images" / "00000001.jpg").stat().st_mtime_ns
    hub.requests.clear()
    r = _fetch(hub, tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert hub.requests == [("GET", "/api/datasets/someone/OpenECAD-Standin")]
    assert "downloaded 0, unpacked 0" in r.stdout
    assert (out / "images" / "00000001.jpg").stat().st_mtime_ns == stamp
    # pinned to the recorded commit: not even that question
    hub.requests.clear()
    r = _fetch(hub, tmp_path, *args, "--revision", sha)
    assert r.returncode == 0 and hub.requests == [] and "nothing asked of the hub" in r.stdout

    # a member deleted: put back by unpacking again, still without downloading
    (out / "images" / "00000002.jpg").unlink()
    hub.requests.clear()
    r = _fetch(hub, tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert (out / "images" / "00000002.jpg").is_file() and hub.count("GET", "/resolve/") == 0

    # an archive lost (a run killed mid-download leaves the others): only it comes again
    (out / "Small_1k_data.7z").unlink()
    hub.requests.clear()
    r = _fetch(hub, tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert [p for m, p in hub.requests if m == "GET" and "/resolve/" in p] == [
        f"/datasets/someone/OpenECAD-Standin/resolve/{sha}/Small_1k_data.7z"]
    assert "unpacked 0" in r.stdout  # same archive, members all there

    # the set changes on the hub: only the changed archive comes again and is unpacked
    files["Small_1k_images.7z"] = _seven_zip({f"images/0000000{i}.jpg": _jpeg(40 * i + 1) for i in range(3)})
    new_sha = hub.set_repo("dataset", "someone/OpenECAD-Standin", files)
    hub.requests.clear()
    r = _fetch(hub, tmp_path, *args)
    assert r.returncode == 0, r.stderr
    assert hub.count("GET", "/resolve/") == 1 and "unpacked 1 archive" in r.stdout
    assert json.loads((out / ".cadvlm_fetch.json").read_text())["commit"] == new_sha


def test_fetch_a_model_repository_and_refusals(hub, tmp_path):
    hub.set_repo("model", "someone/tiny-vlm", {"config.json": b'{"model_type": "llava"}',
                                               "model.safetensors": b"\0" * 1000})
    out = tmp_path / "model"
    r = _fetch(hub, tmp_path, "someone/tiny-vlm", "--type", "model", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert (out / "config.json").read_bytes() == b'{"model_type": "llava"}'
    assert (out / "model.safetensors").stat().st_size == 1000
    r = _fetch(hub, tmp_path, "someone/tiny-vlm", "--type", "model", "--include", "*.bin", "-o", str(tmp_path / "x"))
    assert r.returncode == 1 and "no file matches" in r.stderr
    r = _fetch(hub, tmp_path, "someone/absent", "-o", str(tmp_path / "y"))
    assert r.returncode == 1 and "cadvlm fetch:" in r.stderr and "Traceback" not in r.stderr


def test_unpack_refuses_member_paths_that_leave_the_folder(tmp_path):
    import zipfile

    from cadvlm.fetch import FetchError, unpack

    bad = tmp_path / "set" / "bad.zip"  # py7zr will not even write such a name; zipfile will
    bad.parent.mkdir()
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("ok.txt", b"x")
        z.writestr("../escape.txt", b"x")
    with pytest.raises(FetchError, match="unsafe member"):
        unpack(bad)
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "set" / "ok.txt").exists()
