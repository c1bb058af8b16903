"""CAD code: the OpenECAD v2 language.

- `openecad_writer.write_code(model)`: canonical model -> code, the text OpenECAD's converter writes.
- `openecad_parser.parse_code(text)`: code -> canonical model, never executing the text
  (`CodeParseError` naming the line); `extract_code` / `wrap_answer` handle the chat answer.
- `deepcad_order`, `planes`, `numfmt`: the shared rules (loop order, plane references, numbers).
"""
