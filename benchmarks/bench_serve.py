"""`cadvlm serve` under load, on this machine: latency, throughput, batching gain, memory, TTL, bad input.

    python benchmarks/bench_serve.py --model models --images data/rendered/images

Starts the real command (`python -m cadvlm.cli serve`) as a separate process on 127.0.0.1 and
drives it over HTTP, as a client would:
1. 200 requests at concurrency 16 (rendered sheets from --images, cycled): errors, p50/p95/p99
   latency, throughput, the batch sizes the server formed;
2. memory of the server process (and its build workers) after 100 and after 1,000 requests;
3. result files past their TTL (--ttl, short here) must be gone from the API and the disk;
4. every kind of bad input answered with its 4xx in under 1 s, the server healthy afterwards;
5. the same 200 requests against a server started with --max-batch 1: the batching gain.
Without a trained model folder, a random tiny model is built (its answers are noise: timings of
generation and of failed builds only). Nothing is asserted; figures are printed (and written to
--out; --json writes them as numbers, for benchmarks/gpu_check.py). Short runs: --leak-requests
below 100 moves the memory point there, --no-single skips step 5.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # bad-input makers live with the tests
from serve_helpers import bomb_png, corrupt_png, png_bytes, truncated_png  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, model: Path, workdir: Path, *extra: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.results = workdir / f"results-{self.port}"
        cmd = [sys.executable, "-m", "cadvlm.cli", "serve", "--model", str(model), "--port", str(self.port),
               "--results-dir", str(self.results), "--log-level", "warning", *extra]
        self.log = open(workdir / f"server-{self.port}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=workdir)

    def wait_ready(self, timeout=300) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}); see {self.log.name}")
            try:
                r = requests.get(self.url + "/readyz", timeout=2)
                if r.status_code == 200 and r.json().get("builders_started"):
                    return
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise RuntimeError("the server did not become ready")

    def memory_mb(self) -> tuple[float, float]:
        """(server process RSS, RSS of its child processes: the build workers), MB."""
        import psutil

        p = psutil.Process(self.proc.pid)
        kids = sum(c.memory_info().rss for c in p.children(recursive=True))
        return p.memory_info().rss / 2**20, kids / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


_local = threading.local()


def post(url: str, body: bytes, max_new_tokens: int) -> tuple[int, float, dict]:
    s = getattr(_local, "s", None) or requests.Session()
    _local.s = s
    t = time.perf_counter()
    r = s.post(url + "/v1/predict", files={"image": ("sheet.png", body, "image/png")},
               data={"max_new_tokens": str(max_new_tokens)}, timeout=300)
    dt = time.perf_counter() - t
    return r.status_code, dt, (r.json() if r.headers.get("content-type", "").startswith("application/json") else {})


def load(url: str, images: list[bytes], n: int, concurrency: int, max_new_tokens: int) -> dict:
    cyc = itertools.cycle(images)
    bodies = [next(cyc) for _ in range(n)]
    t = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        out = list(pool.map(lambda b: post(url, b, max_new_tokens), bodies))
    wall = time.perf_counter() - t
    lat = sorted(dt for _, dt, _ in out)
    q = statistics.quantiles(lat, n=100, method="inclusive")
    statuses: dict[str, int] = {}
    for _, _, j in out:
        statuses[j.get("status", "?")] = statuses.get(j.get("status", "?"), 0) + 1
    return {"n": n, "errors": sum(code != 200 for code, _, _ in out), "wall_s": wall, "throughput": n / wall,
            "p50": q[49], "p95": q[94], "p99": q[98], "statuses": statuses,
            "batch_mean": statistics.mean(j.get("batch_size", 0) for _, _, j in out),
            "first_ids": [j.get("id") for _, _, j in out[:5]], "first_files": [j.get("files", {}) for _, _, j in out[:5]]}


BAD = {
    "not a picture": b"%PDF-1.4 not a picture",
    "truncated PNG": truncated_png(),
    "corrupt PNG": corrupt_png(),
    "bomb 100000x100000": bomb_png(),
    "bomb 9000x9000": bomb_png(9000, 9000),
}


def bad_inputs(url: str) -> list[tuple[str, int, float]]:
    rows = []
    for name, data in BAD.items():
        t = time.perf_counter()
        r = requests.post(url + "/v1/predict", files={"image": ("x.png", data, "image/png")}, timeout=30)
        rows.append((name, r.status_code, time.perf_counter() - t))
    cases = [("no picture field", {"other": ("x.txt", b"x", "text/plain")}, {}),
             ("max_new_tokens not a number", {"image": ("s.png", png_bytes(), "image/png")}, {"max_new_tokens": "x"}),
             ("both image and views", {"image": ("s.png", png_bytes(), "image/png"),
                                       "front": ("f.png", png_bytes(), "image/png")}, {})]
    for name, files, data in cases:
        t = time.perf_counter()
        r = requests.post(url + "/v1/predict", files=files, data=data, timeout=30)
        rows.append((name, r.status_code, time.perf_counter() - t))
    rows.append(("body of 21 MB (declared)", *big_body(url)))
    return rows


def big_body(url: str) -> tuple[int, float]:
    """Declare a 21 MB body and start sending it: the 413 must come before it is all sent."""
    import http.client
    from urllib.parse import urlsplit

    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    t = time.perf_counter()
    conn.putrequest("POST", "/v1/predict")
    conn.putheader("Content-Type", "multipart/form-data; boundary=x")
    conn.putheader("Content-Length", str(21 * 2**20))
    conn.endheaders()
    try:
        conn.send(b"--x\r\n" + b"\0" * 65536)
    except OSError:
        pass
    status = conn.getresponse().status
    conn.close()
    return status, time.perf_counter() - t


def tiny_model(path: Path) -> Path:
    from cadvlm.model.manifest import ModelManifest
    from cadvlm.model.tiny import build_tiny_base

    texts = ["size 100 50 20\nplane 128 128 128 254 127 127 127 254 127\nloop\nline 1 2\nextrude new one 139\nend",
             "Write OpenECAD-style CAD code that produces the solid drawn in four views."] * 50
    build_tiny_base(path, texts, {"vocab_size": 400}, seed=0)
    ModelManifest("full", None, render={"size": 128}).write(path)
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "models")
    ap.add_argument("--images", type=Path, default=ROOT / "data" / "rendered" / "images")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--leak-requests", type=int, default=1000)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--ttl", type=float, default=15.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-wait-ms", type=float, default=20.0, help="the server's batching wait")
    ap.add_argument("--out", type=Path, help="also write the report here")
    ap.add_argument("--json", type=Path, help="also write the figures here, as JSON")
    ap.add_argument("--no-single", action="store_true", help="skip the batch-1 server (step 5)")
    args = ap.parse_args()
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    model = args.model
    note = ""
    if not (model / "cadvlm_model.json").is_file():
        model = tiny_model(work / "tiny")
        note = f"(no trained model at {args.model}: a random tiny model, answers are noise)"
    images = [p.read_bytes() for p in sorted(args.images.glob("*.png"))[:64]] if args.images.is_dir() else []
    if not images:
        from serve_helpers import sheet_png

        images = [sheet_png(128)]
    lines = [f"cadvlm serve benchmark: model {model} {note}", f"{len(images)} distinct pictures, "
             f"max_new_tokens {args.max_new_tokens}, {args.workers} build workers, {os.cpu_count()} CPUs"]

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    server = Server(model, work, "--workers", str(args.workers), "--ttl", str(args.ttl), "--queue", "256",
                    "--max-wait-ms", str(args.max_wait_ms))
    try:
        server.wait_ready()
        load(server.url, images, 16, 16, args.max_new_tokens)  # warm-up
        r = load(server.url, images, args.requests, args.concurrency, args.max_new_tokens)
        say(f"\n{r['n']} requests, concurrency {args.concurrency}, dynamic batching (max 16):")
        say(f"  errors {r['errors']}; latency p50 {r['p50']:.2f} s, p95 {r['p95']:.2f} s, p99 {r['p99']:.2f} s; "
            f"throughput {r['throughput']:.2f} req/s; mean batch {r['batch_mean']:.1f}; statuses {r['statuses']}")
        first = r
        done = args.requests + 16
        mem_at = min(100, args.leak_requests)
        if done < mem_at:
            load(server.url, images, mem_at - done, args.concurrency, args.max_new_tokens)
            done = mem_at
        mem100 = server.memory_mb()
        rest = max(0, args.leak_requests - done)
        lr = load(server.url, images, rest, args.concurrency, args.max_new_tokens) if rest else None
        t_idle = time.time()
        mem1000 = server.memory_mb()
        say(f"\nmemory (RSS, MB): after {done} requests server {mem100[0]:.0f} + workers {mem100[1]:.0f}; "
            f"after {done + rest}: server {mem1000[0]:.0f} + workers {mem1000[1]:.0f} "
            f"(server {100 * (mem1000[0] / mem100[0] - 1):+.1f}%, total "
            f"{100 * (sum(mem1000) / sum(mem100) - 1):+.1f}%)")
        if lr:
            say(f"  those {rest} requests: errors {lr['errors']}, {lr['throughput']:.2f} req/s, "
                f"p50 {lr['p50']:.2f} s, p99 {lr['p99']:.2f} s")
        # TTL: everything made before now must be gone after ttl + one sweep
        wait = max(0.0, args.ttl + max(1.0, min(60.0, args.ttl / 4)) + 1 - (time.time() - t_idle))
        time.sleep(wait)
        codes = [requests.get(u, timeout=5).status_code for files in first["first_files"] for u in files.values()]
        on_disk = [p for p in next(server.results.glob("cadvlm-serve-*")).iterdir()]
        ttl_left = len(on_disk) + sum(c != 404 for c in codes)
        say(f"\nTTL {args.ttl:g} s: {len(codes)} files of the first results now answer {sorted(set(codes))}; "
            f"result folders left on disk {time.time() - t_idle:.0f} s after the last request: {len(on_disk)}")
        rows = bad_inputs(server.url)
        healthy = requests.get(server.url + "/healthz", timeout=5).status_code == 200 and \
            load(server.url, images, 4, 4, args.max_new_tokens)["errors"] == 0
        say("\nbad input (status, seconds):")
        for name, code, dt in rows:
            say(f"  {name:30s} {code}  {dt:.3f} s")
        say(f"  slowest {max(dt for _, _, dt in rows):.3f} s; server healthy afterwards: {healthy}")
        metrics = requests.get(server.url + "/metrics", timeout=5).text
    finally:
        server.stop()

    s = None
    if not args.no_single:
        single = Server(model, work, "--workers", str(args.workers), "--max-batch", "1", "--queue", "256")
        try:
            single.wait_ready()
            load(single.url, images, 16, 16, args.max_new_tokens)
            s = load(single.url, images, args.requests, args.concurrency, args.max_new_tokens)
        finally:
            single.stop()
        say(f"\n{s['n']} requests, concurrency {args.concurrency}, batch 1: errors {s['errors']}; "
            f"p50 {s['p50']:.2f} s, p95 {s['p95']:.2f} s, p99 {s['p99']:.2f} s; throughput {s['throughput']:.2f} req/s")
        say(f"dynamic batching / batch 1 throughput: {first['throughput'] / s['throughput']:.2f}x")
    import re

    hist = re.findall(r'cadvlm_generate_batch_size_bucket\{le="([^"]+)"\} (\S+)', metrics)
    say("generate() calls by batch size, cumulative (first server): " +
        ", ".join(f"<={le.replace('.0', '')}: {float(n):.0f}" for le, n in hist))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")
    if args.json:
        keep = ("n", "errors", "throughput", "p50", "p95", "p99", "batch_mean", "statuses")
        args.json.write_text(json.dumps({
            "model": "random tiny" if note else str(model), "requests": args.requests,
            "concurrency": args.concurrency, "max_new_tokens": args.max_new_tokens,
            "batched": {k: first[k] for k in keep}, "single": {k: s[k] for k in keep} if s else None,
            "batching_gain": first["throughput"] / s["throughput"] if s else None,
            "memory_mb": {"after": done, "server": mem100[0], "workers": mem100[1],
                          "after_leak": done + rest, "server_leak": mem1000[0], "workers_leak": mem1000[1]},
            "ttl_files_left": ttl_left, "bad_input": [[n, c, dt] for n, c, dt in rows],
            "healthy_after_bad_input": healthy}, indent=1) + "\n")
    print(json.dumps({"work": str(work)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
