"""The experiment endpoints' engine: DVC itself, driven as a command line, never a second loop.

Why the DVC command line and not its Python API: `dvc exp run --queue` and `dvc queue start` are
what a user would type, so a queued run is the same run (same temporary copy, same params
overrides, same `dvc exp show` row); the API is internal and changes between releases.

Untrusted input never reaches a shell: every command is an argument list. A parameter override
is accepted only for a key that exists in the project's params.yaml, with a value of the type the
key has now (an int where a float is, too), and is written in DVC's `-S key=value` grammar by
`format_value`, quoting strings; an experiment name is a short [A-Za-z0-9_-] word.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import yaml

from cadvlm.dotted_keys import flatten

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_OVERRIDES = 32
MAX_STRING = 1000
DATA_METRICS = ("synthesize", "extract", "render", "convert")  # the data side of the last run
LOG_CHARS = 20_000


class ExperimentError(Exception):
    """A request the experiment endpoints refuse or that DVC failed; `status` is the HTTP code."""

    def __init__(self, message: str, status: int = 422):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- parameter overrides
def lookup(params: dict, key: str):
    """The current value of a dotted key in params.yaml; KeyError when there is none."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def _scalar_ok(current, value) -> bool:
    if isinstance(current, bool):
        return isinstance(value, bool)
    if isinstance(current, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(current, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if isinstance(current, str):
        return isinstance(value, str)
    if current is None:  # an unset option (e.g. data.split_file: null): a scalar or null
        return value is None or (isinstance(value, (str, int, float)) and not isinstance(value, bool))
    return False


def type_ok(current, value) -> bool:
    if isinstance(current, list):
        if not isinstance(value, list) or len(value) > 256:
            return False
        kinds = {type(c) for c in current}
        ref = current[0] if len(kinds) == 1 else None
        return all((_scalar_ok(ref, v) if ref is not None else isinstance(v, (str, int, float, bool)))
                   and not isinstance(v, (list, dict)) for v in value)
    if isinstance(current, dict):
        return False
    return _scalar_ok(current, value)


def _type_name(v) -> str:
    return "null" if v is None else {bool: "boolean", int: "integer", float: "number", str: "string",
                                     list: "list", dict: "section"}.get(type(v), type(v).__name__)


def format_value(value, current=None) -> str:
    """A value in the grammar of `dvc exp run -S key=value` (Hydra's override syntax)."""
    if isinstance(value, list):
        ref = current[0] if isinstance(current, list) and current else None
        return "[" + ",".join(format_value(v, ref) for v in value) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(current, float) or isinstance(value, float):
        return repr(float(value))
    if isinstance(value, int):
        return str(value)
    # Hydra's quoted strings: a quote is escaped with a backslash, and backslashes need doubling
    # only where they come before a quote (or before the closing one); elsewhere they are literal.
    text = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", str(value))
    text = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, text)
    return f"'{text}'"


def check_overrides(params: dict, overrides) -> list[str]:
    """The `-S key=value` arguments for a request's params; ExperimentError (422) naming a bad key."""
    if not isinstance(overrides, dict) or not overrides:
        raise ExperimentError("`params` must be an object of params.yaml keys to values, e.g. {\"train.lr\": 0.001}")
    if len(overrides) > MAX_OVERRIDES:
        raise ExperimentError(f"at most {MAX_OVERRIDES} params per experiment")
    args = []
    for key, value in overrides.items():
        if not isinstance(key, str) or not re.fullmatch(r"[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*", key):
            raise ExperimentError(f"param {key!r}: not a dotted params.yaml key")
        try:
            current = lookup(params, key)
        except KeyError:
            raise ExperimentError(f"param {key!r}: no such key in params.yaml") from None
        if isinstance(current, dict):
            raise ExperimentError(f"param {key!r}: is a section of params.yaml; set its keys one by one")
        if not type_ok(current, value):
            raise ExperimentError(f"param {key!r}: expected a {_type_name(current)} like the current value "
                                  f"{json.dumps(current)}, got {json.dumps(value)}")
        texts = value if isinstance(value, list) else [value]
        if any(isinstance(t, str) and (len(t) > MAX_STRING or any(ord(c) < 32 for c in t)) for t in texts):
            raise ExperimentError(f"param {key!r}: strings must be one line of at most {MAX_STRING} characters")
        if any(isinstance(t, str) and "${" in t for t in texts):  # DVC would resolve it as an interpolation
            raise ExperimentError(f"param {key!r}: `${{` (an interpolation) is not allowed in a value")
        args += ["-S", f"{key}={format_value(value, current)}"]
    return args


def check_name(name) -> str:
    if name is None or name == "":
        return "serve-" + secrets.token_hex(3)
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ExperimentError("`name` must be 1-64 characters of A-Z a-z 0-9 _ -, starting with a letter or digit")
    return name


# ---------------------------------------------------------------- reading DVC's answers
def parse_queue_status(text: str) -> list[dict]:
    """Rows of `dvc queue status`: [{'task', 'name', 'created', 'status'}]."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.strip():
            if header is not None:
                break
            continue
        cells = re.split(r"\s{2,}", line.strip())
        if header is None:
            if cells and cells[0] == "Task":
                header = [c.lower() for c in cells]
            continue
        row = dict(zip(header, cells))
        if len(cells) == len(header):
            rows.append({"task": row.get("task"), "name": row.get("name"), "created": row.get("created"),
                         "status": row.get("status")})
    return rows


def summarize_show(data) -> list[dict]:
    """`dvc exp show --json` as one flat row per baseline or experiment: name, rev, status, params, metrics."""
    rows = []

    def row(entry, baseline=None, executor=None):
        d = entry.get("data") or {}
        params = {}
        for file, content in (d.get("params") or {}).items():
            flat = flatten((content or {}).get("data"))
            params.update(flat if file == "params.yaml" else {f"{file}:{k}": v for k, v in flat.items()})
        metrics = {}
        for file, content in (d.get("metrics") or {}).items():
            metrics.update({f"{file}:{k}": v for k, v in flatten((content or {}).get("data")).items()})
        return {"name": entry.get("name") or d.get("rev") or entry.get("rev"), "rev": d.get("rev") or entry.get("rev"),
                "baseline": baseline, "status": (executor or {}).get("state") or d.get("status"),
                "timestamp": d.get("timestamp"),
                "params": params, "metrics": metrics}

    for base in data or []:
        rows.append(row(base))
        for exp in base.get("experiments") or []:
            for rev in exp.get("revs") or []:
                rows.append(row(rev, baseline=base.get("name") or base.get("rev"), executor=exp.get("executor")))
    return rows


class DvcDriver:
    """Runs DVC commands in the project folder (argument lists, time-limited, blocking)."""

    def __init__(self, project: Path, timeout_s: float = 120.0, python: str = sys.executable):
        self.project = Path(project)
        self.timeout_s = timeout_s
        self.python = python

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        # `dvc queue start` spawns its worker as `dvc` found on PATH: put this interpreter's
        # scripts first, so a server started without activating its virtual environment works.
        bin_dir = str(Path(self.python).parent)
        env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=os.pathsep.join([bin_dir, os.environ.get("PATH", "")]))
        try:
            proc = subprocess.run([self.python, "-m", "dvc", *args], cwd=self.project, env=env, capture_output=True,
                                  text=True, timeout=self.timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise ExperimentError(f"`dvc {' '.join(args[:3])}` took over {self.timeout_s:g} s", 504) from None
        if check and proc.returncode != 0:
            err = (proc.stderr or proc.stdout).strip()[-2000:]
            raise ExperimentError(f"`dvc {' '.join(args[:3])}` failed: {err}", 502)
        return proc

    def params(self) -> dict:
        path = self.project / "params.yaml"
        if not path.is_file():
            raise ExperimentError(f"no params.yaml in the project folder {self.project}", 409)
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}

    def show(self) -> list:
        out = self.run("exp", "show", "--json").stdout
        try:
            return json.loads(out or "[]")
        except ValueError:
            raise ExperimentError("`dvc exp show --json` did not print JSON", 502) from None

    def queue_status(self) -> list[dict]:
        return parse_queue_status(self.run("queue", "status").stdout)

    def queue(self, name: str, set_args: list[str]) -> dict:
        names = {r["name"] for r in self.queue_status()} | {r["name"] for r in summarize_show(self.show())}
        if name in names:
            raise ExperimentError(f"an experiment named {name!r} exists already", 409)
        queued = self.run("exp", "run", "--queue", "--name", name, *set_args)
        started = self.run("queue", "start", check=False)
        return {"name": name, "queued": True, "output": queued.stdout.strip()[-2000:],
                "worker": (started.stdout or started.stderr).strip()[-500:]}

    def state(self, name: str) -> dict:
        queue = {r["name"]: r for r in self.queue_status()}
        rows = {r["name"]: r for r in summarize_show(self.show())}
        if name not in queue and name not in rows:
            raise ExperimentError(f"no experiment named {name!r}", 404)
        q, r = queue.get(name), rows.get(name)
        out = {"name": name, "status": (q or {}).get("status") or (r or {}).get("status"), "queue": q,
               "params": (r or {}).get("params"), "metrics": (r or {}).get("metrics")}
        if q is not None:
            logs = self.run("queue", "logs", name, check=False)
            out["logs"] = (logs.stdout or "")[-LOG_CHARS:] if logs.returncode == 0 else None
        return out

    def cancel(self, name: str) -> dict:
        q = {r["name"]: r for r in self.queue_status()}.get(name)
        if q is None:
            if name in {r["name"] for r in summarize_show(self.show())}:
                raise ExperimentError(f"experiment {name!r} is not queued or running; nothing to cancel", 409)
            raise ExperimentError(f"no experiment named {name!r}", 404)
        status = (q.get("status") or "").lower()
        if status == "queued":
            self.run("queue", "remove", name)
        elif status == "running":
            self.run("queue", "kill", name)
        else:
            raise ExperimentError(f"experiment {name!r} has finished ({q.get('status')}); nothing to cancel", 409)
        return {"name": name, "cancelled": True, "was": q.get("status")}

    def data_metrics(self) -> dict:
        """metrics/<stage>.json of the data stages, as the last run left them (None when absent)."""
        out = {}
        for stage in DATA_METRICS:
            path = self.project / "metrics" / f"{stage}.json"
            try:
                out[stage] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                out[stage] = None
        return out
