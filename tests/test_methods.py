"""AdaVTP and Polymorphic stage logic on synthetic features, the profile's methods section, and the refusals.

The model-level oracle tests are in test_methods_oracle.py; these check the
pieces on their own: the blockwise distances never hold an N x N matrix and
give the same answers as one block, the chunked greedy and the clustering
equal the plain equations (copies and ties included), the reference
statistics follow the documented rule.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import yaml

import erase
from erase import adavtp, pairwise, polymorphic
from erase.merging import Merge, group_means
from erase.profile import AdaVTPReference, Methods, parse_profile_text
from erase.strategy import NAMED
from erase.testing import tiny_profile
from test_methods_oracle import cosine_distance, plain_adavtp, plain_clusters, plain_erank, plain_polymorphic2
from tiny_qwen import build_tiny_qwen25vl


def features(n: int, dim: int, seed: int, copies: int = 0) -> torch.Tensor:
    """Random rows, some of them clustered, the last `copies` rows copies of earlier ones."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim))
    x = centres[rng.integers(0, 4, n)] + 0.3 * rng.normal(size=(n, dim))
    for i in range(copies):
        x[n - 1 - i] = x[i]
    return torch.from_numpy(x).float()


# ---------------------------------------------------------------------------------- blocks
def test_distances_are_computed_in_blocks_never_n_by_n(monkeypatch):
    """At 4,096 tokens no distance block is N x N, and the result is the one-block result."""
    shapes = []
    real = polymorphic.squared_distances

    def spy(x, y, x_sq, y_sq):
        shapes.append((x.shape[0], y.shape[0]))
        return real(x, y, x_sq, y_sq)

    monkeypatch.setattr(polymorphic, "squared_distances", spy)
    x = features(4096, 16, 0)
    centres, assign = polymorphic.density_peaks(x, 300)
    n = x.shape[0]
    assert shapes and all(rows * cols < n * n for rows, cols in shapes)
    assert max(rows for rows, cols in shapes if cols == n) == pairwise.rows_per_block(n) < n
    monkeypatch.setattr(pairwise, "BLOCK_BYTES", 8 * n * n)  # one block
    assert [c.tolist() for c in polymorphic.density_peaks(x, 300)] == [centres.tolist(), assign.tolist()]


@pytest.mark.parametrize("block_bytes", [8 * 7 * 40, 8 * 64 * 64, None])
def test_block_size_does_not_change_anything(block_bytes):
    x = features(64, 8, 1, copies=5)
    want = polymorphic.density_peaks(x, 9)
    got = polymorphic.density_peaks(x, 9, block_bytes=block_bytes)
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()
    np.testing.assert_allclose(
        pairwise.nearest_cosine_distance(x, block_bytes=block_bytes).numpy(),
        pairwise.nearest_cosine_distance(x).numpy(),
        rtol=0,
        atol=1e-12,
    )
    q, k = torch.randn(2, 50, 8), torch.randn(2, 50, 8)
    dense = torch.softmax(q @ k.transpose(-1, -2) * 0.3, dim=-1).double().mean(dim=(0, 1))
    got_attention = pairwise.received_attention(q, k, 0.3, block_bytes=block_bytes)
    np.testing.assert_allclose(got_attention.numpy(), dense.numpy(), rtol=1e-5)
    assert got_attention.sum().item() == pytest.approx(1.0, abs=1e-6)  # float32 probabilities


# ---------------------------------------------------------------------------------- the equations
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_adavtp_greedy_equals_the_plain_procedure(monkeypatch, seed, chunk):
    monkeypatch.setattr(adavtp, "CHUNK", chunk)
    x = features(60, 12, seed, copies=4)
    a = torch.from_numpy(np.random.default_rng(seed).random(60))
    a[5] = a[6]  # a tie: the lower index ranks first
    erank_x = plain_erank(x.double().numpy())
    for k, erank_avg, tau_max in ((15, erank_x, 0.3), (15, erank_x / 3, 2.0), (40, erank_x * 2, 0.05), (60, 1.0, 1.0)):
        got = adavtp.select(x, a, k, erank_avg, tau_max)
        assert got.tolist() == plain_adavtp(x.double().numpy(), a.numpy(), k, erank_avg, tau_max)
        assert len(got) == k


def test_erank_is_exp_of_the_singular_value_entropy():
    x = features(30, 10, 3)
    assert adavtp.erank(x) == pytest.approx(plain_erank(x.double().numpy()), rel=1e-9)
    assert adavtp.erank(x.T) == pytest.approx(plain_erank(x.double().numpy()), rel=1e-9)  # N < C uses the N x N Gram
    rank_one = torch.outer(torch.arange(1.0, 6.0), torch.ones(4))
    assert adavtp.erank(rank_one) == pytest.approx(1.0)
    assert adavtp.erank(torch.eye(5)) == pytest.approx(5.0)


def test_reference_statistics_follow_the_documented_rule():
    images = [features(40, 12, s, copies=s) for s in range(3)]
    ref = adavtp.reference_statistics(images)
    eranks = [plain_erank(f.double().numpy()) for f in images]
    nearest = []
    for f in images:
        f = f.double().numpy()
        nearest += [min(cosine_distance(f[i], f[j]) for j in range(len(f)) if j != i) for i in range(len(f))]
    assert ref.images == 3
    assert ref.erank_avg == pytest.approx(float(np.mean(eranks)), rel=1e-9)
    assert ref.tau_max == pytest.approx(float(np.quantile(nearest, 0.95)), abs=1e-9)
    assert ref.tau_max_rule == adavtp.TAU_MAX_RULE == "p95_nearest_cosine"


@pytest.mark.parametrize("seed", range(3))
def test_density_peaks_equal_the_plain_equations(seed):
    x = features(50, 6, seed, copies=6)
    for c in (1, 4, 12, 50):
        _, assign = polymorphic.density_peaks(x, c)
        assert assign.tolist() == plain_clusters(x.double().numpy(), c)


def test_stage2_ratings_and_merge_equal_the_plain_equations():
    v, t = features(40, 16, 7), features(9, 16, 8)
    for k in (1, 7, 20, 39, 40):
        merge = polymorphic.stage2(v, t, k)
        assert merge.carrier.tolist() == plain_polymorphic2(v.double().numpy(), t.double().numpy(), k).tolist()
        assert merge.keep.size == min(k, 40)
    # one text token: every token is aligned the same, the lowest indices stay
    assert polymorphic.stage2(v, t[:1], 10).keep.tolist()[: 10 - polymorphic.merged_count(10)] == list(range(8))


def test_merged_counts_and_group_means():
    assert [polymorphic.merged_count(k) for k in (1, 2, 3, 4, 32, 614, 1228)] == [0, 0, 0, 1, 5, 96, 192]
    x = torch.arange(12.0).view(6, 2)
    merge = Merge(np.array([0, 3]), np.array([0, 3, -1, 3, 0, 3]))
    where, means = group_means(x, merge)
    assert where.tolist() == [0, 3]
    assert means.tolist() == [[4.0, 5.0], [6.0, 7.0]]  # mean of rows 0, 4 and of rows 1, 3, 5


# ---------------------------------------------------------------------------------- profile
def test_profile_methods_section_round_trips_and_is_optional(tmp_path):
    model = build_tiny_qwen25vl()
    base = tiny_profile(model)
    assert base.methods == Methods() and "methods" not in base.to_dict()  # older readers see the same file
    ref = AdaVTPReference(erank_avg=94.87, tau_max=0.41, images=560)
    prof = base.replace(methods=Methods(adavtp=ref))
    path = prof.save(tmp_path / "p.yaml")
    text = path.read_text()
    assert "methods:" in text and "tau_max_rule: p95_nearest_cosine" in text
    assert erase.load_profile(path) == prof
    # profiles written before the section still load (the published ones and demo.v1)
    for path in erase.registry.profile_files():
        if path.name != "demo.v2.yaml":
            assert erase.load_profile(path).methods.adavtp is None, path.name
    assert erase.load_profile("demo").methods.adavtp is not None  # demo.v2 was calibrated with it


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d["methods"]["adavtp"].update(extra=1), "methods.adavtp: unknown key 'extra'"),
        (lambda d: d["methods"].update(divprune={}), "methods: unknown key 'divprune'"),
        (lambda d: d["methods"]["adavtp"].update(tau_max=3.0), "methods.adavtp.tau_max: a cosine distance cap must be in (0, 2]"),
        (lambda d: d["methods"]["adavtp"].update(erank_avg=0.5), "methods.adavtp.erank_avg"),
        (lambda d: d["methods"]["adavtp"].update(tau_max_rule="median"), "methods.adavtp.tau_max_rule: must be one of"),
        (lambda d: d["methods"]["adavtp"].pop("images"), "methods.adavtp.images: missing required field"),
        (lambda d: d["methods"]["adavtp"].update(tau_max="0.4"), "methods.adavtp.tau_max: expected a finite number"),
    ],
)
def test_profile_methods_section_is_strict(edit, message):
    model = build_tiny_qwen25vl()
    prof = tiny_profile(model).replace(methods=Methods(adavtp=AdaVTPReference(90.0, 0.4, 10)))
    data = prof.to_dict()
    edit(data)
    with pytest.raises(erase.ProfileError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        parse_profile_text(yaml.safe_dump(data), "p.yaml")


# ---------------------------------------------------------------------------------- apply
def test_named_strategies_and_refusals():
    assert {"adavtp", "polymorphic"} <= set(NAMED)
    assert erase.named_strategy("adavtp", 0.15) == erase.Strategy(stage1="adavtp", stage1_keep_ratio=0.15, stage2=False)
    poly = erase.named_strategy("polymorphic", 0.15)
    assert (poly.stage1, poly.stage2_selector, poly.stage2_layer, poly.evict) == ("polymorphic", "polymorphic", 3, False)
    assert math.isclose(poly.stage1_keep_ratio, 0.3)
    assert erase.named_strategy("polymorphic", 0.8).stage1_keep_ratio == 1.0
    model = build_tiny_qwen25vl()
    with pytest.raises(erase.EraseError, match="has no methods.adavtp statistics"):
        erase.apply(model, tiny_profile(model), strategy="adavtp")
    with pytest.raises(erase.EraseError, match="use stage1_site='embeddings'"):
        erase.apply(model, tiny_profile(model), strategy="polymorphic", stage1_site="pixels")
    assert getattr(model, "_erase_handle", None) is None  # nothing was installed


def test_attention_from_another_encode_is_never_used():
    """Image features served from a cache (the ViT does not run): no attention, a one-line error, not stale data."""
    from erase.references import with_adavtp_reference
    from erase.testing.conformance import PROMPTS, batch
    from tiny_qwen import build_processor

    processor = build_processor()
    model = build_tiny_qwen25vl(tokenizer=processor.tokenizer)
    inputs = batch(processor, PROMPTS["one"])
    profile = with_adavtp_reference(tiny_profile(model), model, [inputs])
    with erase.apply(model, profile, strategy="adavtp") as handle:
        with torch.no_grad():
            model(**inputs)  # the ViT runs: its attention ranks the tokens
        assert handle.stats[0][0].tokens_after_stage1 == 16
    cached = model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"], return_dict=True)
    model.model.get_image_features = lambda *args, **kwargs: cached  # a feature cache, as the calibrator's
    try:
        with erase.apply(model, profile, strategy="adavtp"):
            with pytest.raises(erase.EraseError, match="saw no vision-encoder attention"), torch.no_grad():
                model(**inputs)
    finally:
        del model.model.get_image_features
