"""Evaluation: generated CAD code -> solids -> metrics against the truth (DESIGN.md "Evaluation").

- `scoring`: one answer against one truth, in time-limited worker processes;
- `baselines`: the oracle, the constant answer and the nearest training picture;
- `report`: per-method figures, the per-sample table, the truth-beside-prediction sheet;
- `stage`: the DVC evaluate stage; `command`: `cadvlm score`.
"""
