"""DocVQA: document pages, answers scored with ANLS (evaluation only)."""

from ..benchmarks import prompts
from ..benchmarks.source import Benchmark, Columns, register, score_anls
from .infovqa import DOCVQA_IDS

BENCHMARK = register(
    Benchmark(
        name="docvqa",
        title="DocVQA",
        dataset_ids=DOCVQA_IDS,
        config="DocVQA",
        split="validation",
        columns=Columns(answer="answers", id="questionId", extra=("question_types", "docId")),
        build_prompt=prompts.short_answer_prompt,
        scorer=score_anls,
        metric="ANLS",
    )
)
