"""InfographicVQA: infographics, answers scored with ANLS."""

from ..benchmarks import prompts
from ..benchmarks.source import Benchmark, Columns, register, score_anls

DOCVQA_IDS = ("lmms-lab-encoder/DocVQA", "lmms-lab/DocVQA")  # one repository, two configs

BENCHMARK = register(
    Benchmark(
        name="infovqa",
        title="InfoVQA",
        dataset_ids=DOCVQA_IDS,
        config="InfographicVQA",
        split="validation",
        columns=Columns(answer="answers", id="questionId", extra=("answer_type", "operation/reasoning")),
        build_prompt=prompts.short_answer_prompt,
        scorer=score_anls,
        metric="ANLS",
        aliases=("infographicvqa", "infographicsvqa"),
    ),
    calibration=1,
)
