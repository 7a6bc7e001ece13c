"""ChartQA: charts, relaxed accuracy (numbers within 5%)."""

from ..benchmarks import prompts
from ..benchmarks.source import Benchmark, Columns, register
from ..benchmarks.scoring import relaxed_accuracy
from ..items import Item


def score(prediction: str, item: Item) -> float:
    return max((relaxed_accuracy(prediction, ref) for ref in item.references), default=0.0)


BENCHMARK = register(
    Benchmark(
        name="chartqa",
        title="ChartQA",
        dataset_ids=("lmms-lab-encoder/ChartQA", "lmms-lab/ChartQA"),
        config=None,
        split="test",
        columns=Columns(answer="answer", extra=("type",)),
        build_prompt=prompts.single_word_prompt,
        scorer=score,
        metric="relaxed accuracy",
    ),
    calibration=2,
)
