"""Batch jobs: a zip of pictures (or many uploaded files) -> one result per picture, and a zip back.

A job runs in the background and goes through the same `Predictor` as single requests, so its
pictures share generate() calls with interactive traffic; it keeps at most `max_batch` of its
items in flight, which fills a batch without flooding the queue (interactive requests still get
their turn and are never answered 503 because of a job).

Untrusted archives: member names are labels only (never paths; the results zip names entries
`0003_<name with safe characters>`), each member is read with a cap on its real, decompressed
size (a zip can lie about sizes), and a bad picture fails its item with a sentence, not the job.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from cadvlm.serve.pictures import BadInput, model_input, open_picture

PICTURE_EXT = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
SUMMARY_FIELDS = ("index", "name", "status", "detail", "extrudes", "volume_mm3", "box_x_mm", "box_y_mm",
                  "box_z_mm", "result_id")


@dataclass
class JobItem:
    index: int
    name: str  # the client's file name: a label, never a path
    load: object  # () -> bytes (blocking; called in a thread)
    status: str = "pending"  # pending | running | ok | an invalid reason | bad_input | error
    detail: str = ""
    result: dict | None = None

    def summary(self, base_url: str) -> dict:
        r = self.result or {}
        return {"index": self.index, "name": self.name, "status": self.status, "detail": self.detail,
                "result_id": r.get("id"), "extrudes": r.get("extrudes"), "volume_mm3": r.get("volume_mm3"),
                "box_mm": r.get("box_mm"), "files": r.get("files", {})}


@dataclass
class Job:
    id: str
    folder: Path
    items: list[JobItem]
    skipped: list[str] = field(default_factory=list)  # archive members that are not pictures
    created: float = field(default_factory=time.time)
    finished: float | None = None
    task: asyncio.Task | None = None

    @property
    def done(self) -> int:
        return sum(1 for it in self.items if it.status not in ("pending", "running"))

    @property
    def state(self) -> str:
        return "done" if self.finished is not None else "running"


def safe_label(name: str) -> str:
    """A short name with only [A-Za-z0-9._-], for entries of the results zip."""
    stem = PurePosixPath(name.replace("\\", "/")).stem
    return re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:60] or "picture"


def items_from_zip(path: Path, max_items: int, max_bytes: int) -> tuple[list[JobItem], list[str]]:
    """(picture items, skipped member names) of a zip on disk; BadInput when it is no usable zip."""
    try:
        zf = zipfile.ZipFile(path)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadInput(f"archive: not a readable zip file ({exc})") from None
    items, skipped = [], []
    for info in infos:
        name = info.filename
        base = PurePosixPath(name.replace("\\", "/")).name
        if info.is_dir() or name.startswith("__MACOSX/") or base.startswith("."):
            continue
        if PurePosixPath(base).suffix.lower() not in PICTURE_EXT:
            skipped.append(name)
            continue
        if len(items) >= max_items:
            raise BadInput(f"archive: more than {max_items} pictures; split it into several jobs")
        items.append(JobItem(len(items), name, _zip_loader(path, info, max_bytes)))
    if not items:
        raise BadInput("archive: no pictures in it (looked for " + ", ".join(sorted(PICTURE_EXT)) + ")")
    return items, skipped


def _zip_loader(path: Path, info: zipfile.ZipInfo, max_bytes: int):
    def load() -> bytes:
        if info.file_size > max_bytes:
            raise BadInput(f"{info.filename}: {info.file_size:,} bytes is over the per-picture limit")
        with zipfile.ZipFile(path) as zf, zf.open(info) as f:
            data = f.read(max_bytes + 1)  # the real size, whatever the header says
        if len(data) > max_bytes:
            raise BadInput(f"{info.filename}: over the per-picture limit of {max_bytes:,} bytes")
        return data
    return load


def file_loader(path: Path):
    return lambda: path.read_bytes()


class JobRunner:
    def __init__(self, predictor, store, config):
        self.predictor = predictor
        self.store = store
        self.config = config
        self.jobs: dict[str, Job] = {}

    def get(self, job_id: str) -> Job | None:
        """A live job, or None (unknown or past its TTL: then it is forgotten)."""
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is not None and self.store.folder(job_id, kind="job") is None:
            self.forget(job_id)
            return None
        return job

    def forget(self, job_id: str) -> None:
        job = self.jobs.pop(job_id, None)
        if job is not None and job.task is not None and not job.task.done():
            job.task.cancel()

    def prune(self) -> None:
        for job_id in list(self.jobs):
            self.get(job_id)

    def start(self, job: Job, options: dict) -> Job:
        self.jobs[job.id] = job
        job.task = asyncio.get_running_loop().create_task(self._run(job, options), name=f"cadvlm-job-{job.id[:8]}")
        return job

    async def _run(self, job: Job, options: dict) -> None:
        gate = asyncio.Semaphore(max(1, self.config.max_batch))

        async def one(item: JobItem) -> None:
            async with gate:
                item.status = "running"
                try:
                    picture, view = await asyncio.to_thread(self._decode, item)
                    result = await self.predictor.predict(picture, view, options.get("prompt"),
                                                          options["max_new_tokens"], options["longest_mm"],
                                                          base_url=options.get("base_url", ""), bypass_limit=True,
                                                          candidates=options.get("candidates", "model"))
                    item.result, item.status, item.detail = result, result["status"], result["detail"]
                except BadInput as exc:
                    item.status, item.detail = "bad_input", str(exc)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - one item fails, the job goes on
                    item.status, item.detail = "error", f"{type(exc).__name__}: {exc}"

        try:
            await asyncio.gather(*(one(it) for it in job.items))
        finally:
            job.finished = time.time()

    def _decode(self, item: JobItem):
        data = item.load()
        cfg = self.config
        picture = open_picture(data, item.name, cfg.max_pixels, cfg.max_side)
        return model_input(self.predictor.manifest, image=picture)

    def status(self, job: Job, base_url: str = "") -> dict:
        counts: dict[str, int] = {}
        for it in job.items:
            counts[it.status] = counts.get(it.status, 0) + 1
        out = {"id": job.id, "state": job.state, "total": len(job.items), "done": job.done, "counts": counts,
               "skipped": job.skipped, "items": [it.summary(base_url) for it in job.items]}
        if job.state == "done":
            out["results_zip"] = f"{base_url}/v1/batch/{job.id}/results.zip"
        return out

    async def results_zip(self, job: Job) -> Path:
        """The job's results.zip (built once, when the job is done): summary.csv + code + STEP."""
        path = job.folder / "results.zip"
        if not path.is_file():
            await asyncio.to_thread(self._write_zip, job, path)
        return path

    def _write_zip(self, job: Job, path: Path) -> None:
        tmp = path.with_name(".results.zip.tmp")
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for it in job.items:
                r = it.result or {}
                box = r.get("box_mm") or [None, None, None]
                writer.writerow({"index": it.index, "name": it.name, "status": it.status, "detail": it.detail,
                                 "extrudes": r.get("extrudes"), "volume_mm3": r.get("volume_mm3"),
                                 "box_x_mm": box[0], "box_y_mm": box[1], "box_z_mm": box[2],
                                 "result_id": r.get("id")})
                if not r.get("id"):
                    continue
                entry = f"{it.index:04d}_{safe_label(it.name)}"
                for public in ("part.py", "answer.txt", "part.step"):
                    src = self.store.file(r["id"], public, kind="result")
                    if src is not None:
                        zf.write(src, f"{entry}/{public}")
            zf.writestr("summary.csv", buf.getvalue())
        tmp.replace(path)

    def close(self) -> None:
        for job_id in list(self.jobs):
            self.forget(job_id)


def save_upload(src, dest: Path) -> None:
    """Copy an uploaded (spooled) file to dest, blocking; call it in a thread."""
    src.seek(0)
    with open(dest, "wb") as out:
        shutil.copyfileobj(src, out, 1024 * 1024)
