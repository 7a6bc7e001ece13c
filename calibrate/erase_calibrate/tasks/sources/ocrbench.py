"""OCRBench: substring match, reported as a count out of 1000."""

from ..benchmarks import prompts
from ..benchmarks.source import Benchmark, Columns, register
from ..benchmarks.scoring import ocrbench_match
from ..items import Item

HANDWRITTEN_MATH = "Handwritten Mathematical Expression Recognition"


def score(prediction: str, item: Item) -> float:
    handwritten = item.question_type == HANDWRITTEN_MATH or item.metadata.get("dataset") == "HME100k"
    return ocrbench_match(prediction, item.references, handwritten_math=handwritten)


BENCHMARK = register(
    Benchmark(
        name="ocrbench",
        title="OCRBench",
        dataset_ids=("echo840/OCRBench",),
        config=None,
        split="test",
        columns=Columns(answer="answer", question_type="question_type", extra=("dataset",)),
        build_prompt=prompts.plain_prompt,
        scorer=score,
        metric="substring match (count out of 1000)",
        report_scale=1000.0,
    ),
    calibration=3,
)
