"""Stage 1 sees images the way the published profiles were calibrated, and no image vanishes.

- Grayscale bins as the reference does (floor of the weighted sum) for profiles that say so;
  profiles written before the key existed keep their rounding.
- Every image keeps at least one token after Stage 1 and after Stage 2.
- An image resized outside the profile's calibrated pixel range is warned about, once per handle.
- Strategies that never use the entropy do not compute it.
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import skimage.data
import torch
import yaml
from PIL import Image

import erase
from erase import stage1
from erase.testing import make_image, make_messages, tiny_profile
from tiny_qwen import build_processor, build_tiny_qwen25vl


@pytest.fixture(scope="module")
def tiny():
    processor = build_processor()
    return processor, build_tiny_qwen25vl(tokenizer=processor.tokenizer)


def run(processor, model, image, new=2):
    text = processor.apply_chat_template(make_messages("What is it?"), add_generation_prompt=True, tokenize=False)
    inputs = dict(processor(text=[text], images=[image], return_tensors="pt"))
    with torch.no_grad():
        return model.generate(**inputs, max_new_tokens=new, do_sample=False)


def test_floor_grayscale_is_the_reference_binning():
    rgb = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    reference = (rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)).astype(np.uint8)
    floor = stage1.grayscale(rgb, "floor")
    # the float32 reference and the exact integer floor differ by at most one level, rarely
    assert np.abs(floor.astype(int) - reference).max() <= 1
    assert (floor != reference).mean() < 0.01
    assert (stage1.grayscale(rgb, "round") != reference).mean() > 0.2


def test_logo_gets_the_reference_level_under_the_published_profile():
    profile = erase.load_profile("qwen2.5-vl-7b")
    assert profile.stage1.entropy.grayscale_rounding == "floor"
    result = stage1.score_image(skimage.data.logo(), profile)
    assert result.level == 2 and result.stage2_layer == 16
    assert result.global_entropy == pytest.approx(1.4712, abs=1e-3)


def test_profiles_without_the_key_keep_rounding(tmp_path):
    data = yaml.safe_load(erase.load_profile("qwen2.5-vl-7b").to_yaml())
    del data["stage1"]["entropy"]["grayscale_rounding"]
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(data))
    old = erase.load_profile(path)
    assert old.stage1.entropy.grayscale_rounding == "round"
    assert stage1.score_image(skimage.data.logo(), old).level == 3  # what 0.1 computed
    del data["stage1"]["entropy"]
    path.write_text(yaml.safe_dump(data))
    assert erase.load_profile(path).stage1.entropy.grayscale_rounding == "round"


def test_unknown_rounding_is_refused(tmp_path):
    data = yaml.safe_load(erase.load_profile("qwen2.5-vl-7b").to_yaml())
    data["stage1"]["entropy"]["grayscale_rounding"] = "ceil"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(erase.ProfileError, match="grayscale_rounding: must be one of floor, round"):
        erase.load_profile(path)


def test_the_kernel_bins_like_numpy_for_both_roundings():
    if not stage1.kernel_available():
        pytest.skip("the C kernel is not built here")
    arr = np.asarray(skimage.data.astronaut())[:448, :448]
    for rounding in ("floor", "round"):
        ref = stage1.patch_entropy(stage1.grayscale(arr, rounding), 28)
        assert np.array_equal(stage1.patch_entropy_rgb(arr, 28, rounding), ref)


def test_inspect_reports_the_reference_level(tmp_path):
    path = tmp_path / "logo.png"
    Image.fromarray(np.asarray(skimage.data.logo())).save(path)
    code = "from erase_calibrate.cli.inspect_cmd import main; main()"
    res = subprocess.run([sys.executable, "-c", code, str(path), "--json"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert '"level": 2' in res.stdout


@pytest.mark.parametrize("keep_ratios", [(0.9, 0.9, 0.9, 0.9), (0.1, 0.1, 0.1, 0.1)])
def test_a_four_token_image_keeps_a_token_through_both_stages(tiny, keep_ratios):
    processor, model = tiny
    profile = tiny_profile(model, keep_ratios=keep_ratios, final=0.15)
    with erase.apply(model, profile) as handle:
        run(processor, model, make_image(56, 56, 3))
        st = handle.stats[0][0]
    assert st.tokens_total == 4
    assert st.tokens_after_stage1 >= 1 and st.tokens_after_stage2 == 1
    assert len(st.kept_stage2) == 1


def test_pixel_range_outside_the_profile_is_warned_once_per_handle(tiny):
    processor, model = tiny
    profile = dataclasses.replace(tiny_profile(model), image_processing=erase.profile.ImageProcessing(1_000_000, 2_000_000))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with erase.apply(model, profile):
            run(processor, model, make_image(224, 224, 1))
            run(processor, model, make_image(112, 112, 2))
    ours = [w for w in seen if "calibrated at" in str(w.message)]
    assert len(ours) == 1
    msg = str(ours[0].message)
    assert "50176 pixels" in msg and "[1000000, 2000000]" in msg and "min_pixels=1000000" in msg
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with erase.apply(model, tiny_profile(model)):  # no range declared: nothing to say
            run(processor, model, make_image(224, 224, 1))
    assert not [w for w in seen if "calibrated at" in str(w.message)]


@pytest.mark.parametrize("name", ["random", "uniform", "fastv"])
def test_strategies_without_entropy_never_compute_it(tiny, monkeypatch, name):
    processor, model = tiny

    def boom(*a, **k):
        raise AssertionError("entropy computed")

    monkeypatch.setattr(stage1, "patch_entropy_rgb", boom)
    monkeypatch.setattr(erase.adapters.qwen2_5_vl, "unpatchify", boom)
    monkeypatch.setattr(erase.adapters.qwen2_5_vl, "token_entropy", boom)
    with erase.apply(model, tiny_profile(model), strategy=name) as handle:
        run(processor, model, make_image(224, 224, 1))
        st = handle.stats[0][0]
    assert math.isnan(st.global_entropy) and st.level == 0
    with erase.apply(model, tiny_profile(model), strategy="erase"):
        with pytest.raises(AssertionError, match="entropy computed"):
            run(processor, model, make_image(224, 224, 1))
