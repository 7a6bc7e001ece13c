"""MathVista (testmini): the answer extracted and compared by its type (evaluation only)."""

from ..benchmarks import prompts
from ..benchmarks.mathvista_answers import mathvista_score
from ..benchmarks.source import Benchmark, Columns, register
from ..items import Item


def score(prediction: str, item: Item) -> float:
    choices = [item.options[k] for k in sorted(item.options)] if item.options else None
    return mathvista_score(
        prediction,
        item.answer,
        question_type=item.question_type,
        answer_type=item.answer_type,
        precision=item.precision,
        choices=choices,
        unit=item.unit,
    )


BENCHMARK = register(
    Benchmark(
        name="mathvista",
        title="MathVista",
        dataset_ids=("AI4Math/MathVista",),
        config=None,
        split="testmini",
        columns=Columns(
            image="decoded_image",
            answer="answer",
            id="pid",
            choices="choices",
            answer_type="answer_type",
            precision="precision",
            question_type="question_type",
            unit="unit",
            extra=("metadata",),
        ),
        build_prompt=prompts.mathvista_prompt,
        scorer=score,
        metric="extracted answer accuracy",
        aliases=("mathvistatestmini",),
    )
)
