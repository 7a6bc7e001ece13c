"""The transformers boundary: one package reads transformers internals, strictly, and ERASE checks itself.

A renamed keyword, a foreign cache, an untested release or a silently skipped
eviction must each end in one `EraseError` line, never in a silent result.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

import pytest
import torch

import erase
from erase.references import with_adavtp_reference
from erase import _hf
from erase.decoder import Decoder
from erase.testing import tiny_profile
from tiny_qwen import build_processor, build_tiny_qwen25vl, make_image, make_messages

ROOT = Path(__file__).resolve().parents[1]
INTERNAL = ("transformers.models", "transformers.masking_utils", "transformers.cache_utils", "transformers.modeling_",
            "transformers.vision_utils", "transformers.generation", "transformers.integrations", "transformers.utils",
            "transformers.processing_utils", "transformers.image_utils")


@pytest.fixture(scope="module")
def tiny():
    processor = build_processor()
    model = build_tiny_qwen25vl(tokenizer=processor.tokenizer)
    text = processor.apply_chat_template(make_messages("Describe the image."), add_generation_prompt=True, tokenize=False)
    inputs = dict(processor(text=[text], images=[make_image(224, 224, 1)], return_tensors="pt"))
    return model, inputs


def generate(model, inputs, **kw):
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=3, do_sample=False, **kw)


def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_eviction_reaches_every_layer_it_should(tiny):
    model, inputs = tiny
    with erase.apply(model, tiny_profile(model)) as handle:
        out = model.generate(**inputs, max_new_tokens=3, do_sample=False, return_dict_in_generate=True)
        layer = handle.stats[0][0].layer
    lengths = _hf.layer_lengths(out.past_key_values if hasattr(out, "past_key_values") else out.cache)
    assert layer is not None
    # layers 0..k hold only what Stage 2 kept, like every later layer: one length everywhere
    assert len(set(lengths)) == 1, lengths


def test_a_renamed_cache_keyword_is_an_error_not_a_silent_result(tiny, monkeypatch):
    model, inputs = tiny
    monkeypatch.setattr(_hf.kwargs, "cache_name", lambda module: "kv_cache")
    with erase.apply(model, tiny_profile(model)):
        with pytest.raises(erase.EraseError) as exc:
            generate(model, inputs)
    msg = _one_line(exc)
    assert "'kv_cache'" in msg and "transformers" in msg and _hf.transformers_version() in msg


def test_a_module_without_a_cache_keyword_is_refused():
    class NoCache(torch.nn.Module):
        def forward(self, hidden_states, attention_mask=None):
            return hidden_states

    with pytest.raises(erase.EraseError, match="takes none of cache, past_key_values"):
        _hf.call_args(NoCache(), "layer")


def test_a_static_cache_is_refused_by_name(tiny):
    model, inputs = tiny
    with erase.apply(model, tiny_profile(model)):
        with pytest.raises(erase.EraseError) as exc:
            generate(model, inputs, cache_implementation="static")
    msg = _one_line(exc)
    assert "StaticCache" in msg and "DynamicCache" in msg


def test_a_skipped_eviction_fails_the_self_check(tiny, monkeypatch):
    model, inputs = tiny
    monkeypatch.setattr(_hf, "evict_layers", lambda cache, upto, gather: None)
    with erase.apply(model, tiny_profile(model)):
        with pytest.raises(erase.EraseError) as exc:
            generate(model, inputs)
    assert "does not follow ERASE's schedule" in _one_line(exc)


def test_wrong_decode_rotation_fails_the_self_check(tiny, monkeypatch):
    model, inputs = tiny
    real = Decoder.rotary_tables

    def shifted(self, hidden, positions):
        return real(self, hidden, positions + 1)

    monkeypatch.setattr(Decoder, "rotary_tables", shifted)
    with erase.apply(model, tiny_profile(model)):
        with pytest.raises(erase.EraseError) as exc:
            generate(model, inputs)
    assert "unpruned run's positions" in _one_line(exc)


def test_untested_release_is_refused_unless_overridden(tiny, monkeypatch):
    model, inputs = tiny
    monkeypatch.setattr(_hf.version, "transformers_version", lambda: "5.16.1")
    monkeypatch.delenv(_hf.UNTESTED_ENV, raising=False)
    with pytest.raises(erase.EraseError) as exc:
        erase.apply(model, tiny_profile(model))
    msg = _one_line(exc)
    assert "5.16.1" in msg and f"{_hf.OLDEST} to {_hf.NEWEST}" in msg and _hf.UNTESTED_ENV in msg
    monkeypatch.setattr(_hf.version, "transformers_version", lambda: "5.99.0.dev0")
    monkeypatch.setenv(_hf.UNTESTED_ENV, "1")
    with pytest.warns(UserWarning, match="5.99.0.dev0"):
        handle = erase.apply(model, tiny_profile(model))
    with handle:
        generate(model, inputs)  # the self-checks still run, and pass here


def test_the_installed_release_is_inside_the_supported_range():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _hf.check_transformers()


def test_named_strategies_apply_by_name(tiny):
    model, inputs = tiny
    # AdaVTP reads reference statistics from the profile; the others ignore them
    profile = with_adavtp_reference(tiny_profile(model), model, [inputs])
    for name in erase.strategy.NAMED:
        with erase.apply(model, profile, strategy=name, final_keep_ratio=0.25) as handle:
            generate(model, inputs)
            st = handle.stats[0][0]
        assert st.tokens_after_stage2 == erase.stage1.final_count(st.tokens_total, 0.25) or name == "stage1"
    with pytest.raises(erase.EraseError, match="strategy: unknown strategy .fast."):
        erase.apply(model, tiny_profile(model), strategy="fast")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            names.append("<dynamic import_module>")
    return names


def test_only_the_boundary_package_reads_transformers_internals():
    boundary = ROOT / "runtime" / "erase" / "_hf"
    offenders = []
    for base in (ROOT / "runtime", ROOT / "calibrate"):
        for path in base.rglob("*.py"):
            if boundary in path.parents:
                continue
            for name in _imports(path):
                if name.startswith(INTERNAL) or name == "<dynamic import_module>" and "erase" in path.parts:
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert not offenders, offenders
