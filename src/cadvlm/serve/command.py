"""`cadvlm serve`: start the API and the page under uvicorn, on the loopback interface by default.

Loopback by default because inference is open (no token): exposing it is a choice to make with
--host. The model folder is checked before the server listens, so a wrong --model fails at once
with the manifest's message (exit 2), not as a server that never becomes ready; so does
--candidates nearest with a folder that carries no training pictures (retrieval.npz).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def add_arguments_serve(p) -> None:
    from cadvlm.predict import add_candidates_arguments

    p.add_argument("--model", type=Path, default=Path("models"), help="trained model folder (default: models)")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--workers", type=int, default=2, help="build processes (parse + build + exports; default 2)")
    p.add_argument("--project", type=Path, default=Path.cwd(),
                   help="DVC project the experiment endpoints drive (default: the current folder)")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.add_argument("--cpu-threads", type=int, default=0, help="torch threads on a CPU (0: one for small models)")
    p.add_argument("--max-batch", type=int, default=16, help="pictures per generate() call (default 16)")
    p.add_argument("--max-wait-ms", type=float, default=20.0,
                   help="how long a request waits for others to share its batch (default 20)")
    p.add_argument("--queue", type=int, default=64, help="requests allowed to wait; beyond it 503 (default 64)")
    p.add_argument("--max-new-tokens", type=int, default=1024, help="default generation budget (default 1024)")
    p.add_argument("--generate-timeout", type=float, default=120.0, help="seconds per generate() call (default 120)")
    p.add_argument("--build-timeout", type=float, default=60.0, help="seconds per part build (default 60)")
    p.add_argument("--max-body-mb", type=float, default=20.0, help="request body limit (default 20 MB)")
    p.add_argument("--max-batch-body-mb", type=float, default=200.0, help="body limit of /v1/batch (default 200 MB)")
    p.add_argument("--ttl", type=float, default=3600.0, help="seconds result files are kept (default 3600)")
    add_candidates_arguments(p, "the default of requests that do not name `candidates`. ")
    p.add_argument("--results-dir", type=Path, help="where result files go (default: a temporary folder)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def config_from_args(args):
    from cadvlm.serve.config import MB, ServeConfig

    return ServeConfig(model_dir=args.model, project_dir=args.project.resolve(), results_dir=args.results_dir,
                       device=args.device, cpu_threads=args.cpu_threads, workers=args.workers,
                       max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, queue_max=args.queue,
                       generate_timeout_s=args.generate_timeout, build_timeout_s=args.build_timeout,
                       max_body_bytes=int(args.max_body_mb * MB), max_batch_body_bytes=int(args.max_batch_body_mb * MB),
                       max_new_tokens=args.max_new_tokens, ttl_s=args.ttl, candidates=args.candidates,
                       nearest_k=args.nearest)


def cmd_serve(args) -> int:
    import uvicorn

    from cadvlm.serve.app import create_app

    try:
        app = create_app(config_from_args(args))
    except ValueError as exc:  # ManifestError, RetrievalError (--candidates nearest without a bank), bad options
        print(f"cadvlm serve: {exc}", file=sys.stderr)
        return 2
    token = "on (CADVLM_API_TOKEN is set)" if os.environ.get("CADVLM_API_TOKEN") else "off (set CADVLM_API_TOKEN)"
    print(f"cadvlm serve: http://{args.host}:{args.port}/  model {args.model}, experiment endpoints {token}",
          file=sys.stderr)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=10)
    return 0
