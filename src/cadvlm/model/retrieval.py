"""The training pictures a model folder carries for lookup: small grey thumbnails and their answers.

Why: the answer of the training picture closest to the input is often a better part than what a
small model writes (evaluate's `nearest` baseline), and a strong candidate beside the model's own
answers for render-and-compare (`rac_nearest` in evaluate, `cadvlm predict --candidates nearest`,
serve's `candidates=nearest`). predict and serve read nothing but the model folder, so the train
stage saves the bank there (`retrieval.npz`) and the rl stage carries it into the final folder.
A folder without one (older, or imported) works everywhere; only a lookup says it has none.
It sits beside `manifest` because, like cadvlm_model.json, it is part of what a model folder is.

A thumbnail is the picture in grey, resized (bilinear) to RETRIEVAL_PX square, kept as uint8 grey
levels and compared as ink (1 - grey / 255, float32) by squared distance; ties go to the earlier
training picture. These are exactly the numbers evaluate has always compared, so its results do
not move.

The file holds numbers only (read with allow_pickle=False; a folder may come from anywhere):
`grey` (n, px*px) uint8, `answer_of` (n,) int32 into the distinct answers, and `text`, UTF-8 JSON
{version, px, ids, answers}. It is a zip written with fixed timestamps, so the same training
pictures give the same bytes (DVC reruns nothing for it).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BANK_FILE = "retrieval.npz"
BANK_VERSION = 1
# Side of the grey thumbnails (a 2x2 sheet: 16 px a view): enough to tell shapes apart, cheap to compare.
RETRIEVAL_PX = 32
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# What predict's --candidates and serve's `candidates` accept: the model's own answers, or those plus
# the answers of the DEFAULT_NEAREST (or K) closest training pictures.
CANDIDATE_MODES = ("model", "nearest")
DEFAULT_NEAREST = 5


class RetrievalError(ValueError):
    """A model folder's bank that is missing or unusable; `reason` is missing | unreadable | malformed |
    no_renderer (bank_for_compare)."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def grey_levels(picture, px: int = RETRIEVAL_PX) -> np.ndarray:
    """(px*px,) uint8 grey levels of a picture (a path, a PIL image or a uint8 array), resized bilinearly."""
    from PIL import Image

    if isinstance(picture, (str, Path)):
        with Image.open(picture) as im:
            return grey_levels(im, px)
    im = picture if hasattr(picture, "convert") else Image.fromarray(np.asarray(picture, np.uint8))
    return np.asarray(im.convert("L").resize((px, px), Image.BILINEAR), np.uint8).ravel()


def thumbnails(pictures: list, px: int = RETRIEVAL_PX) -> np.ndarray:
    """(n, px*px) uint8 grey levels of n pictures (paths, PIL images or uint8 arrays)."""
    out = np.zeros((len(pictures), px * px), np.uint8)
    for i, picture in enumerate(pictures):
        out[i] = grey_levels(picture, px)
    return out


def ink(grey: np.ndarray) -> np.ndarray:
    """float32 ink levels (0 white .. 1 black) of uint8 grey levels: what the distances compare."""
    return 1.0 - np.asarray(grey, np.float32) / 255.0


@dataclass(eq=False)  # numpy fields make == ambiguous: compare the fields themselves
class RetrievalBank:
    grey: np.ndarray  # (n, px*px) uint8: one thumbnail per training picture
    answer_of: np.ndarray  # (n,) int32: each picture's answer in `answers`
    answers: list[str]  # distinct answers, in order of first use
    ids: list[str]  # each picture's training sample id
    px: int = RETRIEVAL_PX
    _ink: tuple | None = field(default=None, repr=False)  # (ink, squared norms), made on the first lookup

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, pictures: list, answers: list[str], ids: list[str] | None = None,
              px: int = RETRIEVAL_PX) -> "RetrievalBank":
        """A bank of pictures (paths or PIL images) and their answers; ids default to positions."""
        if len(pictures) != len(answers):
            raise ValueError(f"{len(pictures)} pictures but {len(answers)} answers")
        grey = thumbnails(pictures, px)
        distinct: dict[str, int] = {}
        answer_of = np.array([distinct.setdefault(a, len(distinct)) for a in answers], np.int32)
        ids = [str(i) for i in range(len(pictures))] if ids is None else [str(i) for i in ids]
        return cls(grey, answer_of, list(distinct), ids, px)

    @classmethod
    def from_records(cls, records: list, px: int = RETRIEVAL_PX) -> "RetrievalBank":
        """From training records (cadvlm.data.conversations.Record: .image, .answer, .id)."""
        return cls.build([r.image for r in records], [r.answer for r in records], [r.id for r in records], px)

    def answer(self, i: int) -> str:
        return self.answers[int(self.answer_of[i])]

    # ------------------------------------------------------------------ lookup
    def nearest(self, pictures: list, k: int) -> list[list[int]]:
        """For each picture, the indices of the k closest training pictures, closest first."""
        if self._ink is None:
            base = ink(self.grey)
            self._ink = (base, (base * base).sum(1))
        base, base_sq = self._ink
        q = ink(thumbnails(pictures, self.px))
        d = (q * q).sum(1)[:, None] - 2.0 * q @ base.T + base_sq[None, :]
        return np.argsort(d, axis=1, kind="stable")[:, :max(0, int(k))].tolist()

    def nearest_answers(self, pictures: list, k: int) -> list[list[str]]:
        """For each picture, the answers of the k closest training pictures, closest first."""
        return [[self.answer(i) for i in row] for row in self.nearest(pictures, k)]

    # ------------------------------------------------------------------ file
    def save(self, folder) -> Path:
        """Write folder/retrieval.npz (atomically; same bank, same bytes)."""
        path = Path(folder) / BANK_FILE
        text = json.dumps({"version": BANK_VERSION, "px": self.px, "ids": self.ids, "answers": self.answers},
                          ensure_ascii=False, sort_keys=True).encode("utf-8")
        arrays = {"grey": np.ascontiguousarray(self.grey, np.uint8),
                  "answer_of": np.ascontiguousarray(self.answer_of, np.int32),
                  "text": np.frombuffer(text, np.uint8)}
        tmp = path.with_name("." + BANK_FILE + ".tmp")
        with zipfile.ZipFile(tmp, "w") as zf:
            for name, arr in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, arr, allow_pickle=False)
                info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_TIME)
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, buf.getvalue())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, folder) -> "RetrievalBank":
        """The bank of a model folder; RetrievalError saying why when there is none or it is unusable."""
        path = Path(folder) / BANK_FILE
        if not path.is_file():
            raise RetrievalError(f"{folder} has no training pictures to look up ({BANK_FILE}: the train stage "
                                 "writes it; this folder is older or was imported)", "missing")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("grey", "answer_of", "text")}
            meta = json.loads(arrays["text"].tobytes().decode("utf-8"))
        except KeyError as exc:
            raise RetrievalError(f"{path}: not a retrieval bank (no {exc})", "malformed") from None
        except Exception as exc:  # a zip, array or JSON that does not read
            raise RetrievalError(f"{path}: unreadable ({type(exc).__name__}: {exc})", "unreadable") from None
        return cls._checked(path, arrays, meta)

    @classmethod
    def _checked(cls, path: Path, arrays: dict, meta) -> "RetrievalBank":
        def bad(why: str):
            return RetrievalError(f"{path}: {why}", "malformed")

        if not isinstance(meta, dict) or meta.get("version") != BANK_VERSION:
            raise bad(f"version {meta.get('version') if isinstance(meta, dict) else None!r}, expected {BANK_VERSION}")
        px, ids, answers = meta.get("px"), meta.get("ids"), meta.get("answers")
        grey, answer_of = arrays["grey"], arrays["answer_of"]
        if not isinstance(px, int) or px < 1:
            raise bad(f"thumbnail side {px!r} is not a positive integer")
        if grey.dtype != np.uint8 or grey.ndim != 2 or grey.shape[1] != px * px:
            raise bad(f"thumbnails are {grey.dtype} {grey.shape}, expected uint8 (n, {px * px})")
        if not (isinstance(ids, list) and isinstance(answers, list) and all(isinstance(a, str) for a in answers)):
            raise bad("ids and answers must be lists of strings")
        n = grey.shape[0]
        if len(ids) != n or answer_of.shape != (n,) or answer_of.dtype.kind not in "iu":
            raise bad(f"{n} thumbnails but {len(ids)} ids and {answer_of.shape} answer indices")
        if n and (answer_of.min() < 0 or answer_of.max() >= len(answers)):
            raise bad(f"answer indices outside the {len(answers)} answers")
        return cls(grey, answer_of.astype(np.int32), answers, [str(i) for i in ids], px)


def bank_for_compare(folder, manifest) -> RetrievalBank:
    """The bank of a model folder, for render-and-compare against the model's own answers (predict and
    serve's `nearest` mode): RetrievalError when the folder has none, or when the model was trained on
    a dataset's own pictures (reason no_renderer: candidates cannot be drawn as its pictures were)."""
    if manifest.pictures == "imported":
        raise RetrievalError(f"{folder} was trained on a dataset's own pictures, not drawn by the render stage: no "
                             "renderer to copy, so training answers cannot be compared with the input", "no_renderer")
    return RetrievalBank.load(folder)


def carry_bank(src_folder, dst_folder) -> bool:
    """Copy a model folder's bank into another (the rl stage's final folder); False when it has none."""
    src = Path(src_folder) / BANK_FILE
    if not src.is_file():
        return False
    shutil.copy2(src, Path(dst_folder) / BANK_FILE)
    return True


# ---------------------------------------------------------------------- candidates for render-and-compare

@dataclass(frozen=True)
class Candidate:
    answer: str
    kind: str  # greedy | sample | nearest
    train_id: str | None = None  # the training picture a nearest answer comes from


def gather_candidates(greedy: str, sampled: list[str], bank: RetrievalBank | None = None, picture=None,
                      k: int = 0) -> list[Candidate]:
    """What predict and serve hand to render-and-compare: the greedy answer first (it wins ties and
    is kept when nothing builds), the sampled answers, then the answers of the k training pictures
    closest to `picture`, closest first."""
    out = [Candidate(greedy, "greedy")] + [Candidate(a, "sample") for a in sampled]
    if bank is not None and k > 0:
        out += [Candidate(bank.answer(i), "nearest", bank.ids[i]) for i in bank.nearest([picture], k)[0]]
    return out


def choice_summary(choice, candidates: list[Candidate]) -> dict:
    """A render-and-compare Choice as JSON (predict's candidates.json, serve's result): which won, its
    kind, and every candidate with its kind and silhouette IoU (None: it did not build)."""
    items = []
    for c, score in zip(candidates, choice.scores):
        item = {"kind": c.kind, "silhouette_iou": score, "answer": c.answer}
        if c.train_id is not None:
            item["train_id"] = c.train_id
        items.append(item)
    return {"chosen": choice.index, "chosen_kind": candidates[choice.index].kind if candidates else None,
            "built": choice.n_built, "candidates": items}
