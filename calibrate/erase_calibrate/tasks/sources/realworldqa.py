"""RealWorldQA: photos; an option letter where the key is one, else an exact answer."""

from ..benchmarks import prompts
from ..benchmarks.multiple_choice import multiple_choice_score
from ..benchmarks.source import Benchmark, Columns, register
from ..benchmarks.scoring import exact_match
from ..items import Item


def score(prediction: str, item: Item) -> float:
    if item.options and item.answer.strip().upper() in item.options:
        return multiple_choice_score(prediction, item.answer, item.options)
    return exact_match(prediction, item.references)


BENCHMARK = register(
    Benchmark(
        name="realworldqa",
        title="RealWorldQA",
        dataset_ids=("lmms-lab-encoder/RealWorldQA", "lmms-lab/RealWorldQA"),
        config=None,
        split="test",
        columns=Columns(answer="answer", options_in_question=True),
        build_prompt=prompts.plain_prompt,
        scorer=score,
        metric="option letter / exact match",
        aliases=("rwqa",),
        kind="multiple_choice",
    ),
    calibration=5,
)
