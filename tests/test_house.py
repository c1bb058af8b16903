"""The house rules, checked: honest DVC dependencies, no import cycle, small modules, thin stages.

Honest the other way too: what Python, pytest or an editor writes beside the code (bytecode,
caches) is not a change of the code. `.dvcignore` keeps it out of every directory dep, so after
importing every module with bytecode on, `dvc status` finds no code dep changed and a no-op
`dvc repro` reruns nothing; `dvc.lock` records source files only.

`dvc repro` reruns a stage only when one of its `deps` changed, so a module a stage imports but
does not list is a change that silently reuses stale outputs. The import closure of each stage
script is computed from the source (every `import`, module level or inside a function, because a
lazy import runs all the same) and must be covered by that stage's deps.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
MAX_MODULE_LINES = 500
MAX_STAGE_LINES = 30


def module_file(name: str) -> Path | None:
    """The file of a cadvlm module or package, or None when the name is no module (an attribute)."""
    base = SRC / Path(*name.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def module_name(path: Path) -> str:
    rel = path.relative_to(SRC).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """cadvlm modules a file imports (absolute names; `from pkg import mod` counts mod when it is one)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "cadvlm")
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.split(".")[0] == "cadvlm":
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}"))
    return {m for m in found if module_file(m)}


def with_parents(name: str) -> set[str]:
    """Importing a.b.c runs a/__init__, a/b/__init__ and a/b/c."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def closure(path: Path) -> set[Path]:
    """Every cadvlm source file that runs when `path` is run (transitively)."""
    seen: set[str] = set()
    todo = list(imports_of(path))
    while todo:
        for m in with_parents(todo.pop()):
            if m not in seen:
                seen.add(m)
                todo.extend(imports_of(module_file(m)))
    return {module_file(m) for m in seen}


def stage_script(cmd: str) -> Path:
    scripts = [w for w in cmd.split() if w.startswith("stages/") and w.endswith(".py")]
    assert len(scripts) == 1, f"stage command {cmd!r} should run one stages/*.py script"
    return ROOT / scripts[0]


def covered(path: Path, deps: list[str]) -> bool:
    rel = path.relative_to(ROOT).as_posix()
    return any(rel == d or rel.startswith(d.rstrip("/") + "/") for d in deps)


def test_every_module_a_stage_runs_is_one_of_its_deps():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        script = stage_script(stage["cmd"])
        deps = [str(d) for d in stage.get("deps", [])]
        assert covered(script, deps), f"stage {name} does not list its own script {script.name}"
        lost = sorted(p.relative_to(ROOT).as_posix() for p in closure(script) if not covered(p, deps))
        if lost:
            missing[name] = lost
    assert not missing, f"modules imported by a stage but not in its dvc.yaml deps: {missing}"


def test_the_closure_sees_lazy_imports(tmp_path):
    """The check itself: a function-level import counts, and an unlisted module is found."""
    script = tmp_path / "s.py"
    script.write_text("def main():\n    from cadvlm.eval.stage import run_stage\n")
    got = {p.relative_to(SRC).as_posix() for p in closure(script)}
    assert {"cadvlm/__init__.py", "cadvlm/eval/__init__.py", "cadvlm/eval/stage.py",
            "cadvlm/eval/scoring.py", "cadvlm/sandbox.py"} <= got
    assert not covered(SRC / "cadvlm" / "sandbox.py", ["src/cadvlm/eval", "src/cadvlm/sandbox"])


def _graph() -> dict[str, set[str]]:
    files = sorted((SRC / "cadvlm").rglob("*.py"))
    # edges to packages' __init__ are left out: a submodule always imports its package
    return {module_name(f): {m for m in imports_of(f) if module_file(m).name != "__init__.py"} for f in files}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (or a module importing itself)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles(_graph()) == []


def test_no_module_over_500_lines():
    big = {f.relative_to(ROOT).as_posix(): n for f in (SRC / "cadvlm").rglob("*.py")
           if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not big, f"modules over {MAX_MODULE_LINES} lines: {big}"


def test_stage_scripts_are_thin():
    long = {f.name: n for f in (ROOT / "stages").glob("*.py")
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_STAGE_LINES}
    assert not long, f"stage scripts over {MAX_STAGE_LINES} lines: {long}"


def _code_changes() -> dict[str, dict[str, str]]:
    """`dvc status`'s changed deps under src/ and stages/, by stage (data and params are not code)."""
    env = dict(os.environ, DVC_NO_ANALYTICS="1")
    done = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    changes = {}
    for stage, entries in json.loads(done.stdout or "{}").items():
        for entry in entries:
            deps = entry.get("changed deps", {}) if isinstance(entry, dict) else {}
            code = {p: why for p, why in deps.items() if p.startswith(("src/", "stages/"))}
            if code:
                changes[stage] = code
    return changes


def test_bytecode_and_caches_do_not_change_dvc_deps():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    every = ("import importlib, pkgutil, cadvlm\n"
             "for m in pkgutil.walk_packages(cadvlm.__path__, 'cadvlm.'):\n"
             "    importlib.import_module(m.name)\n")
    done = subprocess.run([sys.executable, "-c", every], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    for script in (ROOT / "stages").glob("*.py"):  # what `python stages/x.py` would cache, were it imported
        subprocess.run([sys.executable, "-m", "py_compile", str(script)], cwd=ROOT, env=env, check=True)
    assert (SRC / "cadvlm" / "model" / "__pycache__").is_dir()  # bytecode was written: the check can fail
    (SRC / "cadvlm" / ".pytest_cache").mkdir(exist_ok=True)
    try:
        changed = _code_changes()
    finally:
        (SRC / "cadvlm" / ".pytest_cache").rmdir()
    assert not changed, ("code deps differ from dvc.lock: a cache not in .dvcignore, or code changed "
                         f"without `dvc repro` recording it: {changed}")


def test_dvc_lock_records_source_files_only():
    lock = yaml.safe_load((ROOT / "dvc.lock").read_text())
    tracked = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "src", "stages"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.split()  # committed or new
    wrong = {}
    for stage, entry in lock["stages"].items():
        for dep in entry.get("deps", []):
            path = dep["path"]
            if "nfiles" in dep and path.startswith(("src/", "stages/")):
                sources = sum(1 for f in tracked if f.startswith(path + "/"))
                if dep["nfiles"] != sources:
                    wrong[f"{stage}: {path}"] = (dep["nfiles"], sources)
    assert not wrong, f"dvc.lock's file counts against the source files (recorded, in the tree): {wrong}"
