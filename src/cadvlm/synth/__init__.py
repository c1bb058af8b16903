"""The synthetic part generator: procedural DeepCAD-format models, the pipeline's default data.

Layers, each importing only those above it: `shapes` (2-D outlines, units, polygon tests) ->
`frames` (sketch planes, faces) -> `builder` (the part being drawn) -> `placement` (where shapes
go on a face) -> `base` and one module per feature family (`holes`, `pockets`, `bosses`,
`walls`, `edge_cuts`, `intersect`) -> `generate` (config, compose, validate, retries) ->
`stats` -> `dataset` (the synthesize stage's files and metrics).
"""

from cadvlm.synth.dataset import write_dataset, write_metrics
from cadvlm.synth.generate import SynthConfig, generate, generate_model, model_id, model_json_text
from cadvlm.synth.stats import format_stats

__all__ = ["SynthConfig", "generate", "generate_model", "model_json_text", "model_id", "write_dataset",
           "write_metrics", "format_stats"]
