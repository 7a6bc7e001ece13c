"""TextVQA: scene text, VQA accuracy over the annotators' answers."""

from ..benchmarks import prompts
from ..benchmarks.source import Benchmark, Columns, register
from ..benchmarks.scoring import vqa_accuracy
from ..items import Item


def score(prediction: str, item: Item) -> float:
    return vqa_accuracy(prediction, item.references)


BENCHMARK = register(
    Benchmark(
        name="textvqa",
        title="TextVQA",
        dataset_ids=("lmms-lab-encoder/textvqa", "lmms-lab/textvqa"),
        config=None,
        split="validation",
        columns=Columns(answer="answers", id="question_id", extra=("image_id",)),
        build_prompt=prompts.short_answer_prompt,
        scorer=score,
        metric="VQA accuracy",
    ),
    calibration=4,
)
