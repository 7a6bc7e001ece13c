"""erase-calibrate --dataset: a user's own data (imagefolder, save_to_disk), end to end on the demo model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import erase
from erase_calibrate.tasks import own_data
from erase_calibrate.tasks.own_data import OwnDataset
from erase_calibrate.tasks.sources import demo as tasks

N = 12


def _imagefolder(root: Path, n: int = N, answers=None, drop: str | None = None) -> Path:
    """Demo-style images with metadata.jsonl, the `datasets` imagefolder layout."""
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    # every 7th item: tasks and backgrounds (flat ... clutter) both vary, so image complexities do
    for k, item in enumerate(tasks.make_item(7 * j + 1, seed=3, split="calibration") for j in range(n)):
        name = f"img{k:03d}.png"
        item.image.save(root / name)
        row = {"file_name": name, "question": item.prompt}
        ref = item.references[0] if answers is None else answers
        if k % 2:
            row["answers"] = [ref]
        else:
            row["answer"] = ref  # a plain answer string works too
        if drop:
            row.pop(drop, None)
            if drop == "answers":
                row.pop("answer", None)
        lines.append(json.dumps(row))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return root


def _calibrate(out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-c", "from erase_calibrate.cli.calibrate_cmd import main; main()",
           "--model", "demo", "--out", str(out), "--quiet", "--seed", "1", *args]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_calibrate_on_an_imagefolder_end_to_end(tmp_path):
    data = _imagefolder(tmp_path / "shop-shelves")
    out = tmp_path / "out"
    res = _calibrate(out, "--dataset", str(data), "--scorer", "exact", "--per-benchmark", "8", "--iters", "3")
    assert res.returncode == 0, res.stderr[-3000:]
    profile = erase.load_profile(out / "demo.v1.yaml")
    assert list(profile.calibration.datasets) == ["shop-shelves"]  # only the given data calibrates
    assert 1 <= profile.calibration.datasets["shop-shelves"] <= 8
    assert profile.calibration.iterations == 3
    report = (out / "demo.v1-report.md").read_text()
    assert "3 trials" in report


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: _imagefolder(p, drop="question"), "no column question"),
        (lambda p: _imagefolder(p, drop="answers"), "no column answers (or answer)"),
        (lambda p: _broken(_imagefolder(p)), "img000.png: image is not in a readable format"),
        (lambda p: _empty(p), "the dataset is empty"),
        (lambda p: _imagefolder(p, n=3, answers="zebra"), "none of 3 items answered correctly by the base model; check the prompt and answers"),
    ],
    ids=["missing-question", "missing-answers", "unreadable-image", "empty", "none-correct"],
)
def test_bad_datasets_are_one_line_errors_and_write_nothing(tmp_path, make, expect):
    data = make(tmp_path / "data")
    out = tmp_path / "out"
    res = _calibrate(out, "--dataset", str(data), "--per-benchmark", "2", "--iters", "1")
    assert res.returncode == 2, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    assert expect in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert not out.exists()  # nothing written


def _broken(root: Path) -> Path:
    (root / "img000.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    return root


def _empty(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "metadata.jsonl").write_text("")
    return root


def test_save_to_disk_folder_choices_and_templates(tmp_path):
    import datasets

    items = tasks.generate_items(4, seed=3, split="calibration")
    ds = datasets.Dataset.from_dict(
        {
            "image": [it.image for it in items],
            "question": [it.prompt for it in items],
            "answers": [[it.references[0]] for it in items],
            "choices": [[it.references[0], "none"] for it in items],
        },
        features=datasets.Features({
            "image": datasets.Image(), "question": datasets.Value("string"),
            "answers": datasets.Sequence(datasets.Value("string")), "choices": datasets.Sequence(datasets.Value("string")),
        }),
    )
    ds.save_to_disk(str(tmp_path / "saved"))
    spec = OwnDataset(str(tmp_path / "saved"), "saved", "choice", "{question}\n{choices}\nAnswer with the letter.")
    got = own_data.load_items(spec, limit=None, seed=0)
    assert len(got) == 4 and all(it.references == ("A",) for it in got)  # answers given as option text
    assert all("\nA. " in it.prompt and it.prompt.endswith("Answer with the letter.") for it in got)
    assert own_data.score(got[0], "A") == 1.0 and own_data.score(got[0], "(B)") == 0.0
    # ids are stable and follow the content
    again = own_data.load_items(spec, limit=None, seed=0)
    assert [it.id for it in again] == [it.id for it in got]


def test_scorers_and_naming():
    item = own_data._item(  # noqa: SLF001 - the scoring rules on one built item
        OwnDataset("src", "d", "vqa"), {"image": {"bytes": _png(), "path": None}, "question": "q", "answers": ["Two"]}, "d-1", "src", 0
    )
    assert own_data.score(item, "two") == 1.0 and own_data.score(item, "2") == 1.0  # EvalAI normalisation
    assert own_data.score(item, "three") == 0.0
    named = own_data.describe(["/x/data/", "/y/data", "org/My Set"], "anls", None, {"data"})
    assert [d.name for d in named] == ["data-2", "data-3", "my-set"]
    with pytest.raises(erase.EraseError, match="--scorer must be one of"):
        own_data.describe(["a"], "bleu", None, set())
    with pytest.raises(erase.EraseError, match="unknown field"):
        own_data.describe(["a"], "vqa", "{question} {answer}", set())


def _png() -> bytes:
    import io

    buf = io.BytesIO()
    tasks.generate_items(1, seed=0, split="calibration")[0].image.save(buf, format="PNG")
    return buf.getvalue()
