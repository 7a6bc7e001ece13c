"""V*Bench: small details in large images, multiple choice."""

from ..benchmarks import prompts
from ..benchmarks.source import Benchmark, Columns, register, score_choice

BENCHMARK = register(
    Benchmark(
        name="vstar",
        title="V*Bench",
        dataset_ids=("lmms-lab-encoder/vstar-bench", "lmms-lab/vstar-bench"),
        config=None,
        split="test",
        columns=Columns(
            question="text", answer="label", id="question_id", options_in_question=True, extra=("category",)
        ),
        build_prompt=prompts.vstar_prompt,
        scorer=score_choice,
        metric="option letter accuracy",
        aliases=("vstarbench", "vbench", "v*", "v*bench"),
        kind="multiple_choice",
    ),
    calibration=8,
)
