"""Architecture fingerprints and picking a profile for a model (exact, compatible, or none)."""

from __future__ import annotations

import json
import sys
import warnings

import pytest
import torch
from transformers import InternVLConfig, Qwen2_5_VLConfig, Qwen3VLConfig

import erase
import erase.adapters
from erase import Fingerprint, ProfileError
from erase.testing import tiny_profile
from tiny_models import build_internvl_processor, build_tiny_internvl, build_tiny_qwen3vl
from tiny_qwen import build_tiny_qwen25vl


def internvl3_8b(layers=28, hidden=3584):
    """InternVL3-8B-hf's shape: InternViT (patch 14, 448 px tiles, shuffle 0.5) + a 28-layer Qwen2.5-7B."""
    return InternVLConfig(
        text_config=dict(model_type="qwen2", hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=28, num_key_value_heads=4),
        vision_config=dict(hidden_size=1024, patch_size=14, image_size=448),
        downsample_ratio=0.5,
    )


def qwen3_vl(layers, hidden):
    return Qwen3VLConfig(
        text_config=dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=32, num_key_value_heads=8),
        vision_config=dict(patch_size=16, spatial_merge_size=2, out_hidden_size=hidden),
    )


def qwen25_vl(layers, hidden):
    return Qwen2_5_VLConfig(
        text_config=dict(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=2),
        vision_config=dict(patch_size=14, spatial_merge_size=2, out_hidden_size=hidden),
    )


def no_warning(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


def test_fingerprints_of_configs():
    assert erase.fingerprint_of(internvl3_8b()) == Fingerprint("internvl", 28, 28, 3584)
    assert erase.fingerprint_of(qwen3_vl(36, 4096)) == Fingerprint("qwen3_vl", 32, 36, 4096)
    assert erase.fingerprint_of(qwen25_vl(36, 2048)) == Fingerprint("qwen2_5_vl", 28, 36, 2048)


def test_fingerprints_of_models_agree_with_their_configs():
    for model in (build_tiny_qwen25vl(), build_tiny_qwen3vl(), build_tiny_internvl()):
        fp = erase.fingerprint_of(model)
        assert fp == erase.fingerprint_of(model.config) == tiny_profile(model).model.fingerprint
    assert erase.fingerprint_of(build_tiny_qwen3vl()).pixels_per_token == 32
    assert erase.fingerprint_of(build_tiny_internvl()).pixels_per_token == 28


def test_internvl3_8b_transfers_from_qwen25_vl_7b_without_its_own_profile():
    others = [n for n in erase.shipped_names() if n != "internvl3-8b"]
    with pytest.warns(UserWarning, match=r"'qwen2.5-vl-7b' zero-shot: it was calibrated on Qwen/Qwen2.5-VL-7B-Instruct") as rec:
        prof = erase.match_profile(internvl3_8b(), candidates=others)
    assert prof.name == "qwen2.5-vl-7b"
    assert "same 28 px per token and 28 decoder layers" in str(rec[0].message)
    found = erase.find_profile(internvl3_8b(), candidates=others)
    assert not found.exact and found.fingerprint.family == "internvl"


def test_internvl3_8b_uses_its_own_profile_when_shipped():
    assert no_warning(erase.match_profile, internvl3_8b()).name == "internvl3-8b"


@pytest.mark.parametrize(
    "config, name",
    [
        (qwen3_vl(36, 4096), "qwen3-vl-8b"),
        (qwen3_vl(36, 2560), "qwen3-vl-4b"),
        (qwen25_vl(36, 2048), "qwen2.5-vl-3b"),
        (qwen25_vl(28, 3584), "qwen2.5-vl-7b"),
    ],
)
def test_exact_matches_resolve_to_their_own_profile(config, name):
    assert no_warning(erase.match_profile, config).name == name
    assert erase.find_profile(config).exact


def test_same_family_wins_among_compatible_profiles():
    # 28 px, 28 layers, a width no profile has: Qwen2.5-VL-7B and InternVL3-8B both fit
    with pytest.warns(UserWarning, match="'qwen2.5-vl-7b' zero-shot"):
        assert erase.match_profile(qwen25_vl(28, 2048)).name == "qwen2.5-vl-7b"
    narrow = internvl3_8b(hidden=2048)
    with pytest.warns(UserWarning, match="'internvl3-8b' zero-shot"):
        assert erase.match_profile(narrow).name == "internvl3-8b"
    found = erase.find_profile(qwen25_vl(36, 4096))  # 28 px, 36 layers: only Qwen2.5-VL-3B fits
    assert found.profile.name == "qwen2.5-vl-3b" and not found.exact


def test_nothing_compatible_lists_why_each_profile_does_not_fit():
    with pytest.raises(ProfileError) as err:
        erase.match_profile(qwen25_vl(40, 2048))
    msg = str(err.value)
    assert "qwen2_5_vl, 28 px per token, 40 layers" in msg
    for name in erase.shipped_names():
        assert name in msg
    assert "qwen3-vl-8b has 32 px per token instead of 28 and 36 layers instead of 40" in msg
    assert "qwen2.5-vl-7b has 28 layers instead of 40" in msg
    assert "\n" not in msg


def test_exact_match_prefers_a_profile_calibrated_on_the_same_model(tmp_path, monkeypatch):
    published = erase.load_profile("qwen3-vl-8b")
    mine = published.replace(
        name="my-qwen3",
        model=published.model.__class__(id="/models/q3-8b", fingerprint=published.model.fingerprint),
        calibration=published.calibration.__class__(**{**published.calibration.__dict__, "source": "calibrated"}),
    )
    mine.save(tmp_path / "my-qwen3.yaml")
    monkeypatch.setenv("ERASE_PROFILE_PATH", str(tmp_path))
    config = qwen3_vl(36, 4096)
    assert erase.match_profile(config).name == "my-qwen3"  # calibrated beats published
    config._name_or_path = "Qwen/Qwen3-VL-8B-Instruct"
    assert erase.match_profile(config).name == "qwen3-vl-8b"  # calibrated on this very model


def test_match_from_a_model_folder_and_a_config_file(tmp_path):
    internvl3_8b().save_pretrained(tmp_path / "ivl")
    assert erase.find_profile(tmp_path / "ivl").profile.name == "internvl3-8b"
    assert erase.find_profile(str(tmp_path / "ivl" / "config.json")).exact
    with pytest.raises(erase.EraseError, match="cannot read a model config"):
        erase.find_profile(tmp_path / "missing")


def test_unsupported_architecture_is_named():
    from transformers import LlamaConfig

    with pytest.raises(erase.EraseError, match="no adapter for model type 'llama'"):
        erase.fingerprint_of(LlamaConfig(num_hidden_layers=2, hidden_size=64, intermediate_size=128, num_attention_heads=4))


def test_auto_needs_a_model():
    with pytest.raises(ProfileError, match="'auto' is chosen for a model"):
        erase.load_profile("auto")
    assert erase.resolve_profile("auto", qwen3_vl(36, 4096)).name == "qwen3-vl-8b"
    assert erase.resolve_profile("qwen2.5-vl-3b", qwen3_vl(36, 4096)).name == "qwen2.5-vl-3b"


def test_apply_auto_exact_and_zero_shot(tmp_path, monkeypatch):
    """A tiny InternVL (28 px, 4 layers) takes a tiny Qwen2.5-VL profile zero-shot, or its own exactly."""
    processor = build_internvl_processor()
    model = build_tiny_internvl(processor.tokenizer)
    qwen_profile = tiny_profile(build_tiny_qwen25vl()).replace(name="tiny-qwen")
    qwen_profile.save(tmp_path / "tiny-qwen.yaml")
    monkeypatch.setenv("ERASE_PROFILE_PATH", str(tmp_path))
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}],
        add_generation_prompt=True,
        tokenize=False,
    )
    from tiny_qwen import make_image

    inputs = dict(processor(text=[text], images=[make_image(112, 224, 3)], return_tensors="pt"))
    with pytest.warns(UserWarning, match="'tiny-qwen' zero-shot: it was calibrated on tiny-qwen2_5_vl") as rec:
        handle = erase.apply(model, "auto")
    assert len(rec) == 1  # apply does not warn a second time
    with handle, torch.no_grad():
        model.generate(**inputs, max_new_tokens=2)
        assert handle.profile.name == "tiny-qwen" and handle.stats[0][0].tokens_after_stage2 < handle.stats[0][0].tokens_total
    with pytest.raises(ProfileError, match="allow_transfer"):
        erase.apply(model, qwen_profile)
    tiny_profile(model).replace(name="tiny-internvl").save(tmp_path / "tiny-internvl.yaml")
    no_warning(erase.apply, model, "auto").remove()


def profile_cli(capsys, *args) -> tuple[int, str, str]:
    """erase-profile as its console script runs it (in this process: a subprocess costs seconds)."""
    from erase_calibrate.cli.profile_cmd import main

    argv = sys.argv
    sys.argv = ["erase-profile", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    finally:
        sys.argv = argv
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_match(tmp_path, capsys):
    qwen3_vl(36, 4096).save_pretrained(tmp_path / "q3")
    code, out, err = profile_cli(capsys, "match", tmp_path / "q3")
    assert code == 0, err
    assert out.splitlines()[0].split()[:2] == ["profile", "qwen3-vl-8b"]
    assert "match       exact" in out and err == ""

    internvl3_8b(36, 2048).save_pretrained(tmp_path / "ivl36")  # 28 px, 36 layers: Qwen2.5-VL-3B's shape
    code, out, err = profile_cli(capsys, "match", tmp_path / "ivl36" / "config.json", "--json")
    assert code == 0, err
    rep = json.loads(out)
    assert rep["profile"] == "qwen2.5-vl-3b" and rep["match"] == "compatible"
    assert rep["calibrated_on"] == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert rep["model_fingerprint"] == {"family": "internvl", "pixels_per_token": 28, "num_layers": 36, "hidden_size": 2048}
    assert err.startswith("erase-profile: warning:") and "Qwen/Qwen2.5-VL-3B-Instruct" in err

    internvl3_8b(30).save_pretrained(tmp_path / "ivl30")
    code, out, err = profile_cli(capsys, "match", tmp_path / "ivl30")
    assert code == 2 and out == ""
    assert err.startswith("erase-profile: error: no profile fits this model") and err.count("\n") == 1


@pytest.mark.parametrize("config", [internvl3_8b(), qwen3_vl(36, 4096), qwen25_vl(36, 2048)], ids=["internvl3-8b", "qwen3-vl-8b", "qwen2.5-vl-3b"])
def test_full_size_models_fingerprint_like_their_configs(config):
    """The adapters accept the real architectures (built on the meta device: no memory, no weights)."""
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    adapter = erase.adapters.adapter_for(model)
    assert adapter.fingerprint() == erase.fingerprint_of(config)
    if config.model_type == "internvl":
        assert adapter.tokens_per_tile == config.image_seq_length == 256 and adapter.tile_px == 448
