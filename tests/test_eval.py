"""erase-eval end to end on the demo model: the table, the JSON rows and the plot; base-row
invariants; resuming from the per-item cache without calling the model; a batch answering as
its items one by one; bad input as one line, exit 2, nothing written. CPU only, nothing timed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from erase_calibrate.cli import eval_cmd
from erase_calibrate.eval import sources
from erase_calibrate.eval.run import ItemSet
from erase_calibrate.tasks import Item

METHODS = "base,erase,stage1,fastv,random,uniform,adavtp,polymorphic"
LEVELS = (0.75, 0.85)
LIMIT = 6
REQUIRED = {"benchmark", "method", "pruning", "pruning_achieved", "items", "accuracy", "retained"}


def _run(args: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        eval_cmd.main(args)
    return exc.value.code


def _args(tmp: Path, cache: Path, *extra: str, limit: int = LIMIT) -> list[str]:
    return [
        "--model", "demo", "--methods", METHODS, "--pruning", ",".join(map(str, LEVELS)), "--limit", str(limit),
        "--cache-dir", str(cache), "--quiet", *extra,
    ]


class Counter:
    """Counts model calls (generate batches and the items in them) through `sources`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.batches = self.items = self.loads = 0
        answer, load = sources.answer_batch, sources.load

        def counted_answer(model, processor, inputs, max_new_tokens):
            self.batches += 1
            self.items += len(inputs)
            return answer(model, processor, inputs, max_new_tokens)

        def counted_load(*a, **kw):
            self.loads += 1
            return load(*a, **kw)

        monkeypatch.setattr(sources, "answer_batch", counted_answer)
        monkeypatch.setattr(sources, "load", counted_load)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One full run: 6 held-out items, every method at 75% and 85%, one batch per (method, level)."""
    tmp = tmp_path_factory.mktemp("eval")
    cache = tmp / "cache"
    out = {"json": tmp / "eval.json", "md": tmp / "eval.md", "png": tmp / "eval.png"}
    mp = pytest.MonkeyPatch()
    counter = Counter(mp)
    try:
        code = _run(_args(tmp, cache, "--json", str(out["json"]), "--markdown", str(out["md"]), "--plot", str(out["png"]), "--batch", str(LIMIT)))
    finally:
        mp.undo()
    assert code == 0
    return tmp, cache, out, counter, json.loads(out["json"].read_text())


def test_writes_table_json_and_plot(first_run, capsys):
    _tmp, _cache, out, counter, result = first_run
    assert out["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = out["md"].read_text()
    assert "| pruning | method | achieved | demo | avg retained |" in md
    for m in METHODS.split(","):
        assert f"| {m} |" in md
    rows = result["rows"]
    assert all(REQUIRED <= set(r) for r in rows)
    methods = METHODS.split(",")
    assert len(rows) == 1 + (len(methods) - 1) * len(LEVELS)  # one benchmark: demo
    assert {(r["method"], r["pruning"]) for r in rows if r["method"] != "base"} == {
        (m, p) for m in methods[1:] for p in LEVELS
    }
    assert all(r["items"] == LIMIT and r["benchmark"] == "demo" for r in rows)
    # every (method, level) answered in one batch of 6, plus base (random too: its draw follows the image)
    assert counter.batches == 1 + (len(methods) - 1) * len(LEVELS) and counter.loads == 1
    assert counter.items == LIMIT * (1 + (len(methods) - 1) * len(LEVELS))


def test_base_rows_and_pruning_reached(first_run):
    result = first_run[4]
    base = [r for r in result["rows"] if r["method"] == "base"]
    assert len(base) == 1
    (b,) = base
    assert b["pruning"] == 0 and b["pruning_achieved"] == 0 and b["retained"] == 1.0
    for r in result["rows"]:
        assert 0.0 <= r["accuracy"] <= 1.0
        if b["accuracy"] > 0:
            assert r["retained"] == pytest.approx(r["accuracy"] / b["accuracy"], abs=1e-5)
        if r["method"] == "base":
            continue
        # 256 tokens per demo image; these methods end at floor(256 (1 - p)) tokens
        budget = 1 - int(256 * round(1 - r["pruning"], 9)) / 256
        if r["method"] == "stage1":  # the level's ratio, never below the final budget: at most that
            assert r["pruning_achieved"] <= budget + 1e-6, r
        else:
            assert r["pruning_achieved"] == pytest.approx(budget, abs=1e-6), r


def test_rerun_uses_the_cache_and_asks_the_model_nothing(first_run, tmp_path, monkeypatch):
    _tmp, cache, _out, _counter, result = first_run
    counter = Counter(monkeypatch)
    again = tmp_path / "again.json"
    assert _run(_args(tmp_path, cache, "--json", str(again))) == 0
    assert counter.batches == 0 and counter.loads == 0
    rerun = json.loads(again.read_text())
    assert rerun["rows"] == result["rows"]
    assert rerun["answers_computed"] == 0 and rerun["answers_cached"] == LIMIT * (1 + 7 * len(LEVELS))


def test_a_longer_run_answers_only_the_new_items(first_run, tmp_path, monkeypatch):
    _tmp, cache, _out, _counter, _result = first_run
    counter = Counter(monkeypatch)
    assert _run(_args(tmp_path, cache, "--methods", "base,erase", "--pruning", "0.85", limit=LIMIT + 2)) == 0
    assert counter.items == 2 * 2  # two new items, for base and for erase at 85%


def test_a_batch_answers_as_its_items_one_by_one(first_run, tmp_path):
    """The same run with --batch 1 (left padding never happens) gives every item the same answer
    and the same token counts as the batch of 6."""
    _tmp, cache, _out, _counter, _result = first_run
    single = tmp_path / "single"
    assert _run(_args(tmp_path, single, "--batch", "1")) == 0
    batched = {p.name: p.read_text().splitlines() for p in (next(cache.iterdir())).glob("*.jsonl")}
    one = {p.name: p.read_text().splitlines() for p in (next(single.iterdir())).glob("*.jsonl")}
    assert set(one) <= set(batched)
    for name, lines in one.items():
        by_id = {json.loads(x)["id"]: json.loads(x) for x in batched[name]}
        for x in lines:
            rec = json.loads(x)
            assert by_id[rec["id"]] == rec, (name, rec["id"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--methods", "base,erase,sparsevlm"], "unknown method 'sparsevlm'"),
        (["--pruning", "0"], "in (0, 1)"),
        (["--pruning", "0.85,1"], "in (0, 1)"),
        (["--pruning", "1.5"], "in (0, 1)"),
        (["--pruning", "abc"], "in (0, 1)"),
        (["--profile", "no-such-profile.yaml"], "no-such-profile"),
        (["--json", "{tmp}"], "is a directory"),
        (["--json", "{tmp}/file.txt/out.json"], "--json"),
        (["--plot", "{tmp}/plot.jpg"], "PNG"),
        (["--limit", "0"], "--limit"),
        (["--benchmarks", "nosuchbench"], "unknown benchmark"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, extra, message):
    (tmp_path / "file.txt").write_text("x")
    before = sorted(p.name for p in tmp_path.iterdir())
    cache = tmp_path / "cache"
    args = _args(tmp_path, cache, "--json", str(tmp_path / "out.json"))
    args += [x.replace("{tmp}", str(tmp_path)) for x in extra]
    assert _run(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("erase-eval: error: ") and "\n" not in err and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no JSON, no cache folder


def test_help_names_every_method_and_the_outputs(capsys):
    assert _run(["--help"]) == 0
    out = capsys.readouterr().out
    for word in ("--methods", "--pruning", "--json", "--markdown", "--plot", "--limit", "adavtp", "polymorphic"):
        assert word in out


# --- what erase-eval takes from the registries (no model runs) ---------------------------


def _item(benchmark: str, item_id: str, answer: str, **metadata) -> Item:
    return Item(benchmark=benchmark, id=item_id, question="q", prompt="q", references=(answer,), image_data=b"",
                options={"A": "cat", "B": "dog"}, metadata=metadata)


def test_totals_follow_the_fields_aggregates():
    """MMBench by circular evaluation, MMStar as the mean of its per-l2_category means; the demo
    tasks and a --dataset (no source) as the mean item score."""
    mmb = [_item("mmbench", "5", "A"), _item("mmbench", "1000005", "B"), _item("mmbench", "7", "A")]
    assert sources.aggregate("mmbench", mmb, ["A", "A", "A"]) == pytest.approx(0.5)  # 5's second copy is wrong
    star = [_item("mmstar", "1", "A", l2_category="x"), _item("mmstar", "2", "A", l2_category="x"),
            _item("mmstar", "3", "A", l2_category="x"), _item("mmstar", "4", "A", l2_category="y")]
    assert sources.aggregate("mmstar", star, ["A", "B", "B", "A"]) == pytest.approx((1 / 3 + 1) / 2)
    demo = [_item("demo", "a", "cat"), _item("demo", "b", "dog")]
    assert sources.aggregate("demo", demo, ["cat", "cow"]) == pytest.approx(0.5)


def test_the_demo_is_evaluated_on_its_held_out_split_from_its_registrations():
    assert sources.default_benchmarks("demo") == ["demo"]
    assert sources.default_benchmarks("Qwen/Qwen2.5-VL-7B-Instruct") == list(sources.TABLE1_BENCHMARKS)
    assert sources.default_profile("demo", sources.identify("demo")) == "demo"
    items = sources.benchmark_items("demo", limit=3, seed=0, data_dir=None)
    assert [it.id for it in items] == ["test-0-0", "test-0-1", "test-0-2"]  # never the calibration split
    sets = [ItemSet("demo", "k", items, "demo")]
    refs, what = sources.reference_items(sets, seed=0, data_dir=None)
    assert len(refs) == sources.REFERENCE_ITEMS and all(it.id.startswith("calibration-") for it in refs)
    assert what == sources.reference_spec(sets, seed=0) and "calibration pool" in what


def test_a_source_without_a_held_out_split_references_the_evaluated_images():
    items = [_item("chartqa", str(i), "1") for i in range(3)]
    sets = [ItemSet("chartqa", "k", items, "chartqa")]
    refs, what = sources.reference_items(sets, seed=0, data_dir=None)
    assert refs == items and "first 3 evaluated" in what
