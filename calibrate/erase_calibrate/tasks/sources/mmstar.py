"""MMStar: multiple choice, options inside the question."""

from ..benchmarks import prompts
from ..benchmarks.source import Benchmark, Columns, register, score_choice

BENCHMARK = register(
    Benchmark(
        name="mmstar",
        title="MMStar",
        dataset_ids=("Lin-Chen/MMStar",),
        config=None,
        split="val",
        columns=Columns(answer="answer", id="index", options_in_question=True, extra=("category", "l2_category")),
        build_prompt=prompts.option_letter_prompt,
        scorer=score_choice,
        metric="option letter accuracy",
        kind="multiple_choice",
    ),
    calibration=6,
)
