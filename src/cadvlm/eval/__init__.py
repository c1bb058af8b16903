"""Evaluation: generated CAD code -> solids -> metrics against the truth (DESIGN.md "Evaluation").

- `scoring`: one answer against one truth, in time-limited worker processes;
- `baselines`: the oracle, the constant answer and the nearest training picture;
- `intervals`: seeded bootstrap 95% intervals of every method's headline figures;
- `families`: the per-sample table grouped by kind of part (extrudes, curves, operations, curve types);
- `report`: per-method figures, the per-sample table, the truth-beside-prediction sheet;
- `real`: real DeepCAD parts drawn as the model's pictures were (`eval.real_dir`);
- `stage`: the DVC evaluate stage (with render-and-compare, `cadvlm.render_compare`); `command`: `cadvlm score`.
"""
