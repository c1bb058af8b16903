"""Every limit the server applies, in one place, with the defaults `cadvlm serve` starts with.

The limits are what keep one bad request from costing the others: a body cap answered before the
body is read, a pixel cap answered before a picture is decoded, a bounded generation queue
answered with 503 + Retry-After instead of growing memory, and time limits on generation and on
each build so a runaway answer ends as status "timeout".
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from cadvlm.model.retrieval import CANDIDATE_MODES, DEFAULT_NEAREST

MB = 1024 * 1024


@dataclass
class ServeConfig:
    model_dir: Path = Path("models")
    project_dir: Path = field(default_factory=Path.cwd)  # DVC project the experiment endpoints drive
    results_dir: Path | None = None  # a fresh temporary folder when None
    device: str | None = None
    cpu_threads: int = 0  # torch threads for CPU generation (0: one for small models)
    workers: int = 2  # build processes
    # dynamic batching
    max_batch: int = 16  # pictures in one generate() call
    max_wait_ms: float = 20.0  # how long the first request of a batch waits for company
    queue_max: int = 64  # requests waiting for generation or a build; beyond it: 503
    retry_after_s: int = 2
    # time limits
    generate_timeout_s: float = 120.0  # per generate() call (one batch)
    build_timeout_s: float = 60.0  # per part: parse + build + exports + views
    # inputs
    max_body_bytes: int = 20 * MB  # /v1/predict and everything else
    max_batch_body_bytes: int = 200 * MB  # /v1/batch (a zip of many pictures)
    max_pixels: int = 40_000_000  # per picture, checked on the header before decoding
    max_side: int = 12_000
    max_new_tokens: int = 1024  # default budget
    max_new_tokens_limit: int = 4096  # the most a request may ask for
    max_batch_items: int = 1000
    # candidates: "model" builds the greedy answer; "nearest" also tries the answers of the `nearest_k`
    # training pictures closest to the input and keeps the one that looks most like it (needs the model
    # folder's retrieval.npz). The server's default; a request may ask for either.
    candidates: str = "model"
    nearest_k: int = DEFAULT_NEAREST
    # results
    ttl_s: float = 3600.0  # result files are removed this long after they were made
    sweep_s: float | None = None  # how often expired results are looked for (default ttl/4, 1..60 s)
    # page
    web_dir: Path | None = None  # npm folder holding @google/model-viewer (default: <repo>/web)
    # experiments: the bearer token, read from CADVLM_API_TOKEN when None
    api_token: str | None = None

    def __post_init__(self):
        if self.candidates not in CANDIDATE_MODES:
            raise ValueError(f"candidates must be one of {', '.join(CANDIDATE_MODES)}, not {self.candidates!r}")
        if int(self.nearest_k) < 1:
            raise ValueError(f"nearest_k must be 1 or more, not {self.nearest_k}")

    def token(self) -> str:
        """The experiments token ('' = those endpoints are off)."""
        return self.api_token if self.api_token is not None else os.environ.get("CADVLM_API_TOKEN", "")

    def sweep_interval(self) -> float:
        if self.sweep_s is not None:
            return max(0.05, float(self.sweep_s))
        return min(60.0, max(1.0, self.ttl_s / 4))

    def viewer_dir(self) -> Path:
        if self.web_dir is not None:
            return Path(self.web_dir)
        env = os.environ.get("CADVLM_WEB_DIR")
        if env:
            return Path(env)
        return Path(__file__).resolve().parents[3] / "web"  # the repository's web/ (editable install)
