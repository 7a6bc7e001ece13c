"""`AdapterConformance`: the adapter conformance suite as a base test class (needs pytest).

Subclass it once per model family::

    class TestMyFamily(AdapterConformance):
        def build_processor(self): ...            # a tiny offline processor
        def build_model(self, tokenizer, attn_implementation, dtype): ...  # a tiny random model

and, where the family does not resize images as the Qwen processors do, override
`score_image` (Stage 1 on a raw image without the runtime) and `pixel_range`.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

import erase
from erase import _hf, stage1
from erase.adapters import adapter_for

from .oracles import keep_all_profile, make_image, make_messages, masked_reference_logits, simple_image, tiny_profile

PROMPTS = {
    "one": [(make_messages("Describe the image."), [make_image(224, 224, 1)])],
    # left padding, image before / after the text, two images in one sample, simple and complex images
    "batch3": [
        (make_messages("Describe the image."), [make_image(224, 224, 1)]),
        (make_messages("What is written here?", image_first=False), [simple_image(168, 224, 2)]),
        (make_messages("Compare the two images.", n_images=2), [simple_image(112, 112, 4), make_image(168, 112, 5)]),
    ],
}
# sdpa on both prompt sets; eager (another mask path) on the batch
RUNS = [("sdpa", "one"), ("sdpa", "batch3"), ("eager", "batch3")]


def batch(processor: Any, prompts: list) -> dict:
    texts = [processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m, _ in prompts]
    images = [im for _, ims in prompts for im in ims]
    return dict(processor(text=texts, images=images or None, padding=True, return_tensors="pt"))


class AdapterConformance:
    new_tokens = 4
    pixel_range: tuple[int | None, int | None] = (None, None)  # the tiny processor's, for the Stage 1 oracle

    # ---- what a family provides
    def build_processor(self) -> Any:
        raise NotImplementedError

    def build_model(self, tokenizer: Any, attn_implementation: str, dtype: torch.dtype) -> Any:
        raise NotImplementedError

    def score_image(self, image: Any, profile: erase.Profile, processor: Any) -> stage1.Stage1Result:
        """Stage 1 on a raw image without the runtime (default: the Qwen processors' resize)."""
        return stage1.score_image(image, profile)

    # ---- fixtures
    @pytest.fixture(scope="class")
    def family(self):
        processor = self.build_processor()
        cache: dict = {}

        def model(attn: str = "sdpa", dtype: torch.dtype = torch.float32):
            if (attn, dtype) not in cache:
                cache[attn, dtype] = self.build_model(processor.tokenizer, attn, dtype)
            return cache[attn, dtype]

        return processor, model

    def generate(self, model, inputs, new: int | None = None, **kw):
        with torch.no_grad():
            return model.generate(
                **inputs, max_new_tokens=new or self.new_tokens, do_sample=False,
                output_logits=True, return_dict_in_generate=True, **kw,
            )

    # ---- the suite
    @pytest.mark.parametrize("attn, case", RUNS)
    def test_keep_all_is_identical_to_unpatched(self, family, attn, case):
        processor, models = family
        model = models(attn)
        inputs = batch(processor, PROMPTS[case])
        base = self.generate(model, inputs)
        with erase.apply(model, keep_all_profile(model)) as handle:
            out = self.generate(model, inputs)
            assert all(st.tokens_after_stage2 == st.tokens_total for s in handle.stats for st in s)
        assert torch.equal(out.sequences, base.sequences)
        for a, b in zip(out.logits, base.logits):
            assert torch.equal(a, b)

    @pytest.mark.parametrize("attn, case", RUNS)
    def test_pruned_equals_masked_reference(self, family, attn, case):
        processor, models = family
        model = models(attn)
        inputs = batch(processor, PROMPTS[case])
        with erase.apply(model, tiny_profile(model)) as handle:
            out = self.generate(model, inputs)
            stats = handle.stats
        assert any(st.tokens_after_stage2 < st.tokens_after_stage1 < st.tokens_total for s in stats for st in s)
        ref = masked_reference_logits(model, inputs, out.sequences, stats, self.new_tokens)
        pruned = torch.stack(out.logits, dim=1)
        assert pruned.shape == ref.shape
        assert (pruned - ref).abs().max().item() <= 1e-5

    def test_batch_equals_samples_one_by_one(self, family):
        processor, models = family
        model = models()
        prompts = PROMPTS["batch3"]
        with erase.apply(model, tiny_profile(model)) as handle:
            out = self.generate(model, batch(processor, prompts))
            stats = handle.stats
            for b, prompt in enumerate(prompts):
                single = self.generate(model, batch(processor, [prompt]))
                assert [st.kept_stage2.tolist() for st in handle.stats[0]] == [st.kept_stage2.tolist() for st in stats[b]]
                assert single.sequences[0, -self.new_tokens :].tolist() == out.sequences[b, -self.new_tokens :].tolist()
                for step in range(self.new_tokens):
                    assert (single.logits[step][0] - out.logits[step][b]).abs().max().item() <= 1e-5
        assert len({st.tokens_after_stage2 for s in stats for st in s}) > 1  # samples kept different numbers
        # both Stage 2 layers and the extreme levels occur in this batch
        assert {st.layer for s in stats for st in s} == {1, 2}
        assert {1, 4} <= {st.level for s in stats for st in s}

    def _decode_rotary(self, model, inputs):
        """cos tables that layer 0 used at each decode step."""
        seen = []

        def pre(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            if hidden.shape[1] == 1:
                seen.append(kwargs["position_embeddings"][0].clone())

        h = adapter_for(model).text_model().layers[0].register_forward_pre_hook(pre, with_kwargs=True)
        try:
            out = self.generate(model, inputs)
        finally:
            h.remove()
        return seen, out

    def test_decode_positions_and_cache_follow_the_schedule(self, family):
        processor, models = family
        model = models()
        inputs = batch(processor, PROMPTS["batch3"])
        base, _ = self._decode_rotary(model, inputs)
        with erase.apply(model, tiny_profile(model)) as handle:
            pruned, out = self._decode_rotary(model, inputs)
        new = self.new_tokens
        assert len(base) == len(pruned) == new - 1
        for a, b in zip(base, pruned):
            assert torch.equal(a, b)
        # the cache holds the text and the kept vision tokens of the longest sample, plus the generated ones
        text = (inputs["attention_mask"].bool() & (inputs["input_ids"] != model.config.image_token_id)).sum(1)
        kept = [int(text[b]) + sum(st.tokens_after_stage2 for st in s) for b, s in enumerate(handle.stats)]
        expected = max(kept) + new - 1  # the last generated token is never fed back
        cache = out.past_key_values if getattr(out, "past_key_values", None) is not None else out.cache
        assert _hf.layer_lengths(cache) == [expected] * adapter_for(model).num_layers()
        assert expected < inputs["input_ids"].shape[1] + new - 1
        for s in handle.stats:
            for st in s:
                assert st.kv_evicted == (st.tokens_after_stage1 - st.tokens_after_stage2) * (st.layer + 1)
                assert st.tokens_total == st.grid[0] * st.grid[1]
                assert set(st.kept_stage2.tolist()) <= set(st.kept_stage1.tolist())
                assert len(st.kept_stage2) == st.tokens_after_stage2 == int(st.tokens_total * 0.25)
            assert len({st.layer for st in s}) == 1  # the deepest chosen layer wins for the sample

    def test_stage1_reads_the_processor_pixels_back_exactly(self, family):
        processor, models = family
        model = models()
        profile = tiny_profile(model, min_pixels=self.pixel_range[0], max_pixels=self.pixel_range[1])
        prompts = PROMPTS["batch3"]
        with erase.apply(model, profile) as handle:
            self.generate(model, batch(processor, prompts), new=1)
        for b, (_, images) in enumerate(prompts):
            for st, image in zip(handle.stats[b], images):
                direct = self.score_image(image, profile, processor)
                assert st.grid == direct.grid
                assert st.global_entropy == direct.global_entropy
                assert st.level == direct.level
                assert st.kept_stage1.tolist() == direct.keep_indices.tolist()

    def test_text_only_passes_through(self, family):
        processor, models = family
        model = models()
        inputs = batch(processor, [([{"role": "user", "content": [{"type": "text", "text": "Hello there"}]}], [])])
        base = self.generate(model, inputs)
        with erase.apply(model, tiny_profile(model)) as handle:
            out = self.generate(model, inputs)
            assert handle.stats == []
        assert torch.equal(out.sequences, base.sequences)

    def test_bfloat16_sampling_no_cache_and_plain_forward(self, family):
        processor, models = family
        model = models("sdpa", torch.bfloat16)
        inputs = batch(processor, PROMPTS["batch3"])
        with erase.apply(model, tiny_profile(model)) as handle:
            torch.manual_seed(0)
            sampled = model.generate(**inputs, max_new_tokens=3, do_sample=True, top_k=5)
            assert sampled.shape == (3, inputs["input_ids"].shape[1] + 3)
            nocache = model.generate(**inputs, max_new_tokens=2, do_sample=False, use_cache=False)
            assert nocache.shape[1] == inputs["input_ids"].shape[1] + 2
            assert all(st.tokens_after_stage2 < st.tokens_total for s in handle.stats for st in s)
        # a plain forward (no generate) prunes the same way as the prefill of generate
        model32 = models()
        inputs = batch(processor, PROMPTS["one"])  # unpadded: generate()'s positions are the forward's
        with erase.apply(model32, tiny_profile(model32)) as handle:
            with torch.no_grad():
                logits = model32(**inputs).logits
            forward_stats = handle.stats
            first = self.generate(model32, inputs, new=1)
        assert [[st.kept_stage2.tolist() for st in s] for s in forward_stats] == [
            [st.kept_stage2.tolist() for st in s] for s in handle.stats
        ]
        assert (logits[:, -1] - first.logits[0]).abs().max().item() <= 1e-5

    def test_remove_restores_the_model(self, family):
        processor, models = family
        model = models()
        inputs = batch(processor, PROMPTS["one"])
        base = self.generate(model, inputs, new=2)
        erase.apply(model, tiny_profile(model)).remove()
        assert torch.equal(self.generate(model, inputs, new=2).sequences, base.sequences)
        assert "get_image_features" not in adapter_for(model).entry_module().__dict__

    def test_fastv_schedule_equals_masked_reference(self, family):
        """Stage 2 only, at layer 1, no eviction: layers 0..1 keep every token in their cache."""
        processor, models = family
        model = models("eager")
        inputs = batch(processor, PROMPTS["batch3"])
        with erase.apply(model, tiny_profile(model), strategy="fastv") as handle:
            out = self.generate(model, inputs)
            stats = handle.stats
        ref = masked_reference_logits(model, inputs, out.sequences, stats, self.new_tokens, evicted=False)
        assert (torch.stack(out.logits, dim=1) - ref).abs().max().item() <= 1e-5
        assert all(st.tokens_after_stage1 == st.tokens_total and st.kv_evicted == 0 for s in stats for st in s)
