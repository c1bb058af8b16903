"""`cadvlm serve`: the trained model behind an HTTP API and a web page.

The serve path is `cadvlm predict` made long-lived: the model folder is read once (weights and
manifest), concurrent requests are batched into one `generate()` call (`batching`), answers are
parsed and built in the time-limited sandbox pool (`builds`), never in the event loop, and the
files of each result live for a while under a server-made id (`store`). Batch jobs (`jobs`) and
the DVC experiment endpoints (`experiments`) sit beside inference; the page (`page`, `static/`)
is a thin client of the same API.

This package's `__init__` imports nothing: build workers import `cadvlm.serve.builds` and must not
pay for FastAPI.
"""
