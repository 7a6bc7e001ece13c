"""MMBench (en, dev): multiple choice with a hint, options in letter columns."""

from ..benchmarks import prompts
from ..benchmarks.source import Benchmark, Columns, register, score_choice

BENCHMARK = register(
    Benchmark(
        name="mmbench",
        title="MMBench (en dev)",
        dataset_ids=("lmms-lab-encoder/MMBench", "lmms-lab/MMBench"),
        config="en",
        split="dev",
        columns=Columns(
            answer="answer",
            id="index",
            hint="hint",
            option_columns=("A", "B", "C", "D", "E"),
            extra=("category", "L2-category", "source"),
        ),
        build_prompt=prompts.mmbench_prompt,
        scorer=score_choice,
        metric="option letter accuracy (static, no judge)",
        aliases=("mmbenchen", "mmbenchendev", "mmbench_en_dev"),
        kind="multiple_choice",
    ),
    calibration=7,
)
