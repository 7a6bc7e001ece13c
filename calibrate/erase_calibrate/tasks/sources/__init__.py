"""Item sources, one module each: importing this package registers every one of them.

A module here calls `benchmarks.source.register(Benchmark(...))` (a dataset on the hub, or
local parquet files) or `registry.register(TaskSource(...))` (anything else, e.g. demo.py). To
add a benchmark, add a module; nothing else lists them (docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")
