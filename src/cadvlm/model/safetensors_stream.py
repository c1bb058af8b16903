"""Read and write safetensors one tensor at a time, with plain file reads, so memory stays near one tensor.

Why not `safetensors.safe_open` / `save_file`: `save_file` needs every tensor of a file in memory
at once, and `safe_open` maps the file, so every page a conversion touches counts in the process's
resident memory until the file is closed: converting a 5 GB shard then shows ~5 GB resident. The
format is simple enough to stream (safetensors' README, "Format"): 8 bytes little-endian header
length N, N bytes of JSON `{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{...}}`, then the raw little-endian, C-order bytes, offsets relative to the end of the header. Here a
tensor's bytes are read with `readinto` into a fresh buffer (page cache, not our memory, holds the
file) and written straight out, so the peak is about the largest tensor, not the largest shard. A
tensor that is only renamed is not read at all: `StreamWriter.copy_from` copies its byte range from
file to file inside the kernel (`os.copy_file_range`), falling back to 16 MiB chunks.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

# safetensors dtype names (safetensors README) <-> torch dtypes.
DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}
NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit on the JSON header
CHUNK = 16 * 1024 * 1024


class SafetensorsError(ValueError):
    """A file that is not valid safetensors (the message names it)."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # safetensors name, e.g. "BF16"
    shape: tuple[int, ...]
    begin: int  # absolute file offsets of the data
    end: int

    @property
    def nbytes(self) -> int:
        return self.end - self.begin


def read_header(path: str | Path) -> tuple[dict[str, TensorInfo], dict]:
    """{name: TensorInfo} in file order, and the `__metadata__` dict, from the header alone."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise SafetensorsError(f"{path}: too short for a safetensors file")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER:
            raise SafetensorsError(f"{path}: header of {n} bytes is implausible")
        try:
            header = json.loads(f.read(n))
        except ValueError as exc:
            raise SafetensorsError(f"{path}: header is not JSON ({exc})") from None
    size = path.stat().st_size
    meta = header.pop("__metadata__", None) or {}
    infos = []
    for name, h in header.items():
        b, e = h["data_offsets"]
        info = TensorInfo(name, h["dtype"], tuple(int(s) for s in h["shape"]), 8 + n + b, 8 + n + e)
        if h["dtype"] not in DTYPES or info.end > size or b > e:
            raise SafetensorsError(f"{path}: tensor {name} has dtype {h['dtype']} / offsets {b}..{e} we cannot read")
        infos.append(info)
    infos.sort(key=lambda t: t.begin)
    return {t.name: t for t in infos}, meta


def read_bytes(path: str | Path, info: TensorInfo) -> bytearray:
    """The raw bytes of one tensor."""
    buf = bytearray(info.nbytes)
    with open(path, "rb") as f:
        f.seek(info.begin)
        got = f.readinto(buf)
    if got != info.nbytes:
        raise SafetensorsError(f"{path}: tensor {info.name} is truncated")
    return buf


def read_tensor(path: str | Path, info: TensorInfo) -> torch.Tensor:
    """One tensor, owning its memory (a bytearray the tensor views)."""
    buf = read_bytes(path, info)
    if not buf:
        return torch.empty(info.shape, dtype=DTYPES[info.dtype])
    return torch.frombuffer(buf, dtype=DTYPES[info.dtype]).reshape(info.shape)


class StreamWriter:
    """Write a safetensors file whose tensor names, dtypes and shapes are known up front.

    The header is written first from `specs` [(name, dtype, shape)]; then `write(name, data)` must be
    called for each tensor in the same order, with a tensor of that dtype and shape or its raw bytes.
    `close()` checks every tensor came. Written to `path + '.part'` and renamed at the end, so a crash
    never leaves a file that looks whole.
    """

    def __init__(self, path: str | Path, specs: list[tuple[str, torch.dtype, tuple[int, ...]]],
                 metadata: dict | None = None):
        self.path = Path(path)
        self._tmp = self.path.with_name(self.path.name + ".part")
        header, offset = {}, 0
        self._order = []
        for name, dtype, shape in specs:
            nbytes = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
            header[name] = {"dtype": NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
            self._order.append((name, dtype, tuple(shape), nbytes))
            offset += nbytes
        header["__metadata__"] = {str(k): str(v) for k, v in (metadata or {"format": "pt"}).items()}
        raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
        raw += b" " * (-len(raw) % 8)  # data starts 8-byte aligned, as the reference writer does
        self.total_bytes = offset
        self._f = open(self._tmp, "wb", buffering=0)  # noqa: SIM115  kept open across write() calls; closed by close()/abort()
        self._f.write(struct.pack("<Q", len(raw)))
        self._f.write(raw)
        self._next = 0

    def _expect(self, name: str):
        want, dtype, shape, nbytes = self._order[self._next]
        if name != want:
            raise SafetensorsError(f"{self.path}: expected tensor {want} next, got {name}")
        return dtype, shape, nbytes

    def copy_from(self, name: str, path: str | Path, info: TensorInfo) -> None:
        """Write tensor `name` as the raw bytes of `info` in the file `path`, without reading them into memory."""
        dtype, shape, nbytes = self._expect(name)
        if NAMES[dtype] != info.dtype or shape != info.shape or nbytes != info.nbytes:
            raise SafetensorsError(f"{self.path}: {name} declared {dtype} {shape}, source is {info.dtype} {info.shape}")
        out = self._f.fileno()
        with open(path, "rb", buffering=0) as src:
            offset, left = info.begin, nbytes
            while left:
                try:
                    n = os.copy_file_range(src.fileno(), out, left, offset)
                except (AttributeError, OSError):  # not Linux, or a filesystem pair it refuses
                    n = 0
                if n <= 0:  # fall back to plain reads for the rest
                    src.seek(offset)
                    while left:
                        chunk = src.read(min(CHUNK, left))
                        if not chunk:
                            raise SafetensorsError(f"{path}: tensor {info.name} is truncated")
                        self._f.write(chunk)
                        left -= len(chunk)
                    break
                offset += n
                left -= n
        self._next += 1

    def write(self, name: str, data: torch.Tensor | bytes | bytearray) -> None:
        dtype, shape, nbytes = self._expect(name)
        if isinstance(data, torch.Tensor):
            if data.dtype != dtype or tuple(data.shape) != shape:
                raise SafetensorsError(f"{self.path}: {name} is {data.dtype} {tuple(data.shape)}, "
                                       f"declared {dtype} {shape}")
            # A uint8 view of the tensor's own memory: written without another copy.
            data = data.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
        if len(memoryview(data).cast("B")) != nbytes:
            raise SafetensorsError(f"{self.path}: {name} has the wrong number of bytes")
        self._f.write(data)
        self._next += 1

    def close(self) -> None:
        self._f.close()
        if self._next != len(self._order):
            self._tmp.unlink(missing_ok=True)
            raise SafetensorsError(f"{self.path}: {len(self._order) - self._next} tensors were never written")
        self._tmp.replace(self.path)

    def abort(self) -> None:
        self._f.close()
        self._tmp.unlink(missing_ok=True)
