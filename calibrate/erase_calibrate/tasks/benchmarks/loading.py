"""Loading benchmark items from the Hugging Face hub or from local parquet files.

Without `data_dir`, a benchmark loads with ``datasets.load_dataset(id, config,
split=split)``, trying its dataset ids in order (``lmms-lab-encoder/*`` first,
then ``lmms-lab/*``); with ``HF_DATASETS_OFFLINE=1`` that reads the local
`datasets` cache.

With `data_dir`, the parquet files of benchmark NAME (see `benchmark_names()`)
are found as either

    <data_dir>/<NAME>.parquet              one file, or
    <data_dir>/<NAME>/**/*.parquet         a folder (searched recursively),

and read with ``datasets.load_dataset("parquet", data_files=...)``. The folder
name may also be the benchmark's title or an alias ("ChartQA", "V*Bench" ->
"vstar"). A folder may be a downloaded copy of the dataset repository: when
some file paths name the split ("validation-00000-of-00002.parquet") only
those are read, and when some sit under a folder named like the config
("InfographicVQA/...") only those are read. Columns must follow the real
dataset's schema (see `registry`); images may be stored the way Hugging Face
stores them (a struct of bytes and path), as raw bytes or as file paths.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from erase import EraseError

from ..items import Item
from .registry import Benchmark, get_benchmark
from .rows import row_to_item
from .sampling import item_ids, row_key, sample_order

SYNTHETIC_MARK = b"erase_synthetic"


def load_items(
    name: str | Benchmark,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    limit: int | None = None,
    seed: int = 0,
    dataset_id: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> list[Item]:
    """Load a benchmark's items.

    `limit` None gives every row in stored order; an integer gives that many
    rows picked with `seed` (see `sampling`). `dataset_id` overrides the hub
    id (a mirror); `cache_dir` is passed to `datasets`. Images are decoded to
    RGB when an item's `image` is read. Faults raise a one-line `EraseError`
    naming the path or dataset id.
    """
    benchmark = get_benchmark(name)
    sample_order([], limit, seed)  # check limit and seed before any reading
    if data_dir is not None:
        files = find_local_files(benchmark, data_dir)
        dataset = _read_parquet(benchmark, files, cache_dir)
        where = str(files[0] if len(files) == 1 else files[0].parent)
        synthetic = any(_is_synthetic(f) for f in files)
    else:
        dataset, where = _read_hub(benchmark, dataset_id, cache_dir)
        synthetic = False

    c = benchmark.columns
    missing = [col for col in c.required() if col not in dataset.column_names]
    if missing:
        raise EraseError(f"{where}: {benchmark.name} data lacks column(s) {', '.join(missing)}")
    has_id = bool(c.id) and c.id in dataset.column_names
    key_columns = c.key_columns(dataset.column_names)
    table = dataset.select_columns(key_columns).to_dict() if len(dataset) else {k: [] for k in key_columns}
    keys = [row_key([table[col][i] for col in key_columns]) for i in range(len(dataset))]
    ids = item_ids(keys, None if has_id else benchmark.name)

    dataset = _undecoded_images(dataset, c.image)
    items = []
    for index in sample_order(keys, limit, seed):
        item = row_to_item(benchmark, dataset[int(index)], ids[index], where)
        if synthetic:
            item = _mark_synthetic(item)
        items.append(item)
    return items


def find_local_files(benchmark: Benchmark, data_dir: str | os.PathLike[str]) -> list[Path]:
    """The parquet files of `benchmark` under `data_dir` (layout in the module docstring)."""
    root = Path(data_dir)
    if not root.exists():
        raise EraseError(f"{root}: no such data directory")
    if not root.is_dir():
        raise EraseError(f"{root}: not a directory")
    try:
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise EraseError(f"{root}: cannot read data directory: {exc.strerror or exc}") from None

    wanted = benchmark.name
    matches = [
        entry
        for entry in entries
        if (entry.is_dir() or (entry.is_file() and entry.name.endswith(".parquet")))
        and _safe_benchmark(entry.name[: -len(".parquet")] if entry.name.endswith(".parquet") else entry.name) == wanted
    ]
    if len(matches) > 1:
        raise EraseError(f"{root}: several sources for {wanted} ({', '.join(m.name for m in matches)}); keep one")
    files: list[Path] = []
    for entry in matches:
        if entry.is_file():
            files.append(entry)
            continue
        try:
            files.extend(sorted(p for p in entry.rglob("*.parquet") if p.is_file()))
        except OSError as exc:
            raise EraseError(f"{entry}: cannot read folder: {exc.strerror or exc}") from None
    if not files:
        raise EraseError(
            f"{root}: no parquet files for {wanted} "
            f"(expected {root / (wanted + '.parquet')} or {root / wanted}/*.parquet)"
        )
    files = _narrow(files, lambda p: _names_split(p, benchmark.split))
    if benchmark.config:
        files = _narrow(files, lambda p: benchmark.config in p.parent.parts)
    for f in files:
        if not os.access(f, os.R_OK):
            raise EraseError(f"{f}: cannot read file (permission denied)")
    return files


def _safe_benchmark(stem: str) -> str | None:
    try:
        return get_benchmark(stem).name
    except EraseError:
        return None


def _narrow(files: list[Path], keep) -> list[Path]:
    kept = [f for f in files if keep(f)]
    return kept or files


def _names_split(path: Path, split: str) -> bool:
    return re.match(rf"^{re.escape(split)}(?:[-_.]|$)", path.name) is not None or split in path.parent.parts


def _read_parquet(benchmark: Benchmark, files: list[Path], cache_dir: Any) -> Any:
    import datasets

    try:
        return datasets.load_dataset(
            "parquet",
            data_files=[str(f) for f in files],
            split="train",
            cache_dir=None if cache_dir is None else str(cache_dir),
        )
    except Exception as exc:  # pyarrow and datasets raise many kinds
        where = files[0] if len(files) == 1 else files[0].parent
        raise EraseError(f"{where}: cannot read parquet data for {benchmark.name}: {_first_line(exc)}") from None


def _read_hub(benchmark: Benchmark, dataset_id: str | None, cache_dir: Any) -> tuple[Any, str]:
    import datasets

    ids = (dataset_id,) if dataset_id else benchmark.dataset_ids
    errors = []
    for repo in ids:
        args = (repo, benchmark.config) if benchmark.config else (repo,)
        try:
            ds = datasets.load_dataset(
                *args, split=benchmark.split, cache_dir=None if cache_dir is None else str(cache_dir)
            )
            return ds, repo
        except Exception as exc:  # not found, offline, gated: try the next id
            errors.append(f"{repo}: {_first_line(exc)}")
    config = f"config {benchmark.config}, " if benchmark.config else ""
    raise EraseError(
        f"cannot load {benchmark.name} ({config}split {benchmark.split}) from the hub: "
        + "; ".join(errors)
        + "; pass data_dir= to read local parquet files"
    )


def _undecoded_images(dataset: Any, column: str) -> Any:
    import datasets

    feature = dataset.features.get(column)
    if isinstance(feature, datasets.Image) and feature.decode:
        return dataset.cast_column(column, datasets.Image(decode=False))
    return dataset


def _is_synthetic(path: Path) -> bool:
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except Exception:  # unreadable here means unreadable later, with a better message
        return False
    return meta.get(SYNTHETIC_MARK, b"").lower() in (b"1", b"true", b"yes")


def _mark_synthetic(item: Item) -> Item:
    return replace(item, metadata={**item.metadata, "synthetic": True})


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()[0].split())
