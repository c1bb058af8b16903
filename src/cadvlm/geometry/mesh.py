"""From an exact solid to what the rest of the pipeline consumes: triangles, files, points.

Tessellation uses OpenCascade's own mesher (it knows the exact surfaces, so circles stay round to
the requested deflection); the triangles come out as numpy arrays that open3d, the renderer and
the metrics take without copies. Exports write to a temporary file and rename, so a failed
export never leaves half a file behind.

Units: solids here are in metres, as DeepCAD's JSON is. OpenCascade's STEP writer takes shape
coordinates as millimetres and labels the file so, and STL has no unit but is read as
millimetres by CAD tools and slicers. So both exports write a copy scaled to millimetres, and
`read_step` scales back: a 50 mm part opens as 50 mm, not 0.05 mm.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from OCP.BRep import BRep_Tool
from OCP.BRepMesh import BRepMesh_IncrementalMesh
from OCP.IFSelect import IFSelect_RetDone
from OCP.STEPControl import STEPControl_AsIs, STEPControl_Reader, STEPControl_Writer
from OCP.StlAPI import StlAPI_Writer
from OCP.TopAbs import TopAbs_FACE, TopAbs_REVERSED
from OCP.TopExp import TopExp_Explorer
from OCP.TopLoc import TopLoc_Location
from OCP.TopoDS import TopoDS

from cadvlm.cad.model import CADError
from cadvlm.geometry.solid import bounding_box, transformed

# Chord deflection relative to the part's size: fine enough that a hole's outline reads as a
# circle in a 512 px view and that sampled points sit within ~1e-4 of the exact surface.
REL_DEFLECTION = 1e-3
ANGULAR_DEFLECTION = 0.25
MM_PER_M = 1000.0


def mesh_shape(shape, rel_deflection: float = REL_DEFLECTION, angular: float = ANGULAR_DEFLECTION) -> None:
    """Attach a triangulation to every face (in place; reused by later calls)."""
    lo, hi = bounding_box(shape)
    size = float(np.linalg.norm(hi - lo)) or 1.0
    BRepMesh_IncrementalMesh(shape, rel_deflection * size, False, angular, False)


def tessellate(shape, rel_deflection: float = REL_DEFLECTION, angular: float = ANGULAR_DEFLECTION):
    """Triangle mesh of the shape: (vertices (N,3) float64, triangles (M,3) int32), outward facing."""
    mesh_shape(shape, rel_deflection, angular)
    verts, tris, offset = [], [], 0
    exp = TopExp_Explorer(shape, TopAbs_FACE)
    while exp.More():
        face = TopoDS.Face(exp.Current())
        exp.Next()
        loc = TopLoc_Location()
        tri = BRep_Tool.Triangulation_s(face, loc)
        if tri is None:
            continue
        n_nodes, n_tris = tri.NbNodes(), tri.NbTriangles()
        trsf = loc.Transformation()
        pts = np.empty((n_nodes, 3))
        for i in range(n_nodes):
            p = tri.Node(i + 1).Transformed(trsf)
            pts[i] = (p.X(), p.Y(), p.Z())
        ids = np.empty((n_tris, 3), dtype=np.int32)
        for i in range(n_tris):
            ids[i] = tri.Triangle(i + 1).Get()
        ids -= 1
        if face.Orientation() == TopAbs_REVERSED:
            ids = ids[:, ::-1]
        verts.append(pts)
        tris.append(ids + offset)
        offset += n_nodes
    if not tris:
        raise CADError("tessellation_failed", "the mesher produced no triangles")
    return np.concatenate(verts), np.ascontiguousarray(np.concatenate(tris), dtype=np.int32)


def sample_points(vertices: np.ndarray, triangles: np.ndarray, n: int = 8192, seed: int = 0) -> np.ndarray:
    """n points uniformly distributed over the mesh surface (area-weighted), reproducible by seed."""
    rng = np.random.default_rng(seed)
    a, b, c = (vertices[triangles[:, k]] for k in range(3))
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    total = area.sum()
    if not total > 0:
        raise CADError("empty_solid", "the mesh has no area")
    idx = rng.choice(len(area), size=n, p=area / total)
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return a[idx] + u[:, None] * (b[idx] - a[idx]) + v[:, None] * (c[idx] - a[idx])


def _atomic(path, write) -> Path:
    """Run write(tmp_path) then move the temp file onto path (no half-written outputs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; outputs are ordinary files
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _quiet_occt() -> None:
    """OpenCascade's STEP translator prints transfer statistics to stdout; drop its printers."""
    from OCP.Message import Message, Message_PrinterOStream

    Message.DefaultMessenger_s().RemovePrinters(Message_PrinterOStream.get_type_descriptor_s())


def export_step(shape, path) -> Path:
    _quiet_occt()

    in_mm = transformed(shape, scale=MM_PER_M)

    def write(tmp):
        writer = STEPControl_Writer()
        writer.Transfer(in_mm, STEPControl_AsIs)
        if writer.Write(tmp) != IFSelect_RetDone:
            raise CADError("export_failed", f"STEP writer failed for {path}")

    return _atomic(path, write)


def export_stl(shape, path, rel_deflection: float = REL_DEFLECTION) -> Path:
    in_mm = transformed(shape, scale=MM_PER_M)
    mesh_shape(in_mm, rel_deflection)

    def write(tmp):
        writer = StlAPI_Writer()
        writer.ASCIIMode = False
        if not writer.Write(in_mm, tmp):
            raise CADError("export_failed", f"STL writer failed for {path}")

    return _atomic(path, write)


def read_step(path):
    """Load a STEP file back as one shape, in metres (used to check exports reopen)."""
    _quiet_occt()
    reader = STEPControl_Reader()
    if reader.ReadFile(str(path)) != IFSelect_RetDone:
        raise CADError("unreadable_file", f"cannot read STEP file {path}")
    reader.TransferRoots()
    return transformed(reader.OneShape(), scale=1.0 / MM_PER_M)
