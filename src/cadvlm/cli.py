"""The `cadvlm` command: one entry point, each subcommand a thin call into the library.

Subcommand implementations live beside the logic they drive (imported lazily, so `cadvlm build`
does not pay for importing torch).
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, function, help). Each function takes the parsed args and returns an exit code.
COMMANDS = {
    "build": ("cadvlm.geometry.commands", "cmd_build", "build the solid of a DeepCAD JSON model; write STEP/STL"),
    "render": ("cadvlm.render.commands", "cmd_render", "render orthographic views of a model to PNG"),
    "contact-sheet": ("cadvlm.render.commands", "cmd_contact_sheet", "one PNG with the views of many models"),
    "code": ("cadvlm.codec.commands", "cmd_code",
             "print a model's CAD code (OpenECAD v2, CadQuery or compact), or convert a folder of models"),
    "parse": ("cadvlm.codec.commands", "cmd_parse", "parse CAD code (safely, never executed) to DeepCAD JSON"),
    "validate-data": ("cadvlm.data.commands", "cmd_validate_data", "check a conversation dataset folder"),
    "predict": ("cadvlm.predict", "cmd_predict", "pictures -> CAD code -> STEP/STL with a trained model"),
    "score": ("cadvlm.eval.command", "cmd_score", "score a folder of generated code against ground truth"),
    "serve": ("cadvlm.serve.command", "cmd_serve", "HTTP API and web page: pictures -> code -> STEP, batching"),
    "fetch": ("cadvlm.fetch", "cmd_fetch",
              "download a dataset set or a model from the Hugging Face hub (the only network step)"),
    "preset": ("cadvlm.presets", "cmd_preset", "a recipe of params overrides (presets/*.yaml) as one `dvc exp run`"),
    "import-model": ("cadvlm.model.import_command", "cmd_import_model",
                     "convert a TinyLLaVA/OpenECAD checkpoint into a LLaVA folder for model.base"),
}


def _add_arguments(name: str, parser: argparse.ArgumentParser) -> None:
    module, _, _ = COMMANDS[name]
    mod = importlib.import_module(module)
    getattr(mod, "add_arguments_" + name.replace("-", "_"))(parser)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="cadvlm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, _, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text)
        # Only the chosen command's module is imported to declare its arguments.
        if argv and argv[0] == name:
            _add_arguments(name, sp)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help()
        return 2
    module, func, _ = COMMANDS[args.command]
    return int(getattr(importlib.import_module(module), func)(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
