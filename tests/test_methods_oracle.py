"""AdaVTP and Polymorphic, checked against the papers' equations computed plainly.

For each family (tiny random Qwen2.5-VL, Qwen3-VL, InternVL):

- the runtime's selection and merge equal a slow, plain computation from the
  papers' equations (Python loops, numpy float64) on the same features and
  attention the runtime used: kept indices exactly, merged embeddings to 1e-6;
- the attention the runtime ranks by equals a plain recomputation of the
  vision encoder's block (the last full-attention block; InternVL's [CLS]);
- AdaVTP only removes tokens: the pruned run equals the masked reference;
- Polymorphic merges: the LLM input holds the merged features in the centres'
  slots, the input of the layer after Stage 2 holds the merged hidden states,
  and the whole run equals the masked reference with the clusters' means
  written at the centres' positions;
- a batch (left padding, several images per prompt, sdpa and eager) equals
  its samples one by one.
"""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import erase
from erase import methods, polymorphic
from erase.adapters import adapter_for
from erase.references import with_adavtp_reference
from erase.testing import image_slots, masked_reference_logits, tiny_profile
from erase.testing.conformance import PROMPTS, batch
from tiny_models import build_internvl_processor, build_qwen3_processor, build_tiny_internvl, build_tiny_qwen3vl
from tiny_qwen import build_processor, build_tiny_qwen25vl

NEW = 3
LAYERS = 5  # Polymorphic prunes at layer 3: one layer after it
FAMILIES = {
    "qwen2_5_vl": (
        build_processor,
        lambda tok, attn: build_tiny_qwen25vl(tokenizer=tok, num_layers=LAYERS, attn_implementation=attn),
    ),
    "qwen3_vl": (build_qwen3_processor, lambda tok, attn: build_tiny_qwen3vl(tok, num_layers=LAYERS, attn_implementation=attn)),
    "internvl": (build_internvl_processor, lambda tok, attn: build_tiny_internvl(tok, num_layers=LAYERS, attn_implementation=attn)),
}


@pytest.fixture(scope="module", params=list(FAMILIES))
def family(request):
    build_proc, build_model = FAMILIES[request.param]
    processor = build_proc()
    models: dict = {}

    def model(attn: str = "sdpa"):
        if attn not in models:
            models[attn] = build_model(processor.tokenizer, attn)
        return models[attn]

    inputs = batch(processor, PROMPTS["batch3"])
    profile = with_adavtp_reference(tiny_profile(model()), model(), [inputs])
    return request.param, processor, model, profile


def generate(model, inputs, new=NEW):
    with torch.no_grad():
        return model.generate(
            **inputs, max_new_tokens=new, do_sample=False, output_logits=True, return_dict_in_generate=True
        )


# ---------------------------------------------------------------------------------------------
# The papers' equations, plainly
# ---------------------------------------------------------------------------------------------
def plain_erank(x: np.ndarray) -> float:
    s = np.linalg.svd(x, compute_uv=False)
    q = [v / s.sum() for v in s if v > 0]
    return math.exp(-sum(v * math.log(v) for v in q))


def cosine_distance(a: np.ndarray, b: np.ndarray) -> float:
    return 1.0 - float(a @ b) / (math.sqrt(float(a @ a)) * math.sqrt(float(b @ b)))


def plain_adavtp(x: np.ndarray, attention: np.ndarray, k: int, erank_avg: float, tau_max: float) -> list[int]:
    """AdaVTP Sec. 4.3: sort by attention; keep the top candidate, drop candidates closer than tau_i; repeat."""
    n = len(attention)
    order = sorted(range(n), key=lambda i: (-attention[i], i))
    rank = {t: r + 1 for r, t in enumerate(order)}
    factor = plain_erank(x) / erank_avg * 0.01  # Eq. 6
    candidates, kept = list(order), []
    while candidates and len(kept) < k:
        t = candidates.pop(0)
        kept.append(t)
        if len(kept) == k:
            break
        tau = min(tau_max, rank[t] * factor)
        candidates = [c for c in candidates if not cosine_distance(x[t], x[c]) < tau]
    for t in order:  # the budget is not met: dropped tokens, by attention
        if len(kept) < k and t not in kept:
            kept.append(t)
    return sorted(kept)


def plain_clusters(x: np.ndarray, c: int, k_nn: int = 5) -> list[int]:
    """Density-peak clustering (Polymorphic Eqs. 1-6): each row's centre."""
    n, dim = x.shape
    if c >= n:
        return list(range(n))
    d = [[math.sqrt(float(((x[i] - x[j]) ** 2).sum())) / math.sqrt(dim) for j in range(n)] for i in range(n)]
    knn = min(k_nn, n - 1)
    rho = [math.exp(-sum(sorted(d[i][j] ** 2 for j in range(n) if j != i)[:knn]) / knn) if knn else 1.0 for i in range(n)]
    delta = []
    for i in range(n):
        denser = [d[i][j] for j in range(n) if rho[j] > rho[i]]
        delta.append(min(denser) if denser else max(d[i]))
    score = [rho[i] * delta[i] for i in range(n)]
    centres = sorted(sorted(range(n), key=lambda i: (-score[i], i))[:c])
    return [i if i in centres else min(centres, key=lambda j: (d[i][j], j)) for i in range(n)]


def merged_count(k: int) -> int:
    return math.floor(Fraction(k * 10, 64) + Fraction(1, 2))  # round(k / 6.4), halves up


def plain_split(x: np.ndarray, order: list[int], k: int) -> np.ndarray:
    """Keep the first k - c of `order`, merge the rest into c density-peak centres: each token's carrier."""
    n = len(order)
    if k >= n:
        return np.arange(n)
    c = merged_count(k)
    carrier = np.full(n, -1)
    for t in order[: k - c]:
        carrier[t] = t
    rest = sorted(order[k - c :])
    if c:
        centre = plain_clusters(x[rest], c)
        for i, t in enumerate(rest):
            carrier[t] = rest[centre[i]]
    return carrier


def plain_polymorphic1(x: np.ndarray, attention: np.ndarray, k: int) -> np.ndarray:
    return plain_split(x, sorted(range(len(attention)), key=lambda i: (-attention[i], i)), k)


def plain_polymorphic2(v: np.ndarray, t: np.ndarray, k: int) -> np.ndarray:
    """Eqs. 9-12: softmax over the text tokens, raters above the mean alignment, alpha, top alpha kept."""
    nv, nt, d = v.shape[0], t.shape[0], v.shape[1]
    m = np.zeros((nv, nt))
    for i in range(nv):
        logits = [float(v[i] @ t[j]) / math.sqrt(d) for j in range(nt)]
        top = max(logits)
        e = [math.exp(z - top) for z in logits]
        m[i] = [z / sum(e) for z in e]
    s = [sum(m[i, j] for i in range(nv)) / nv for j in range(nt)]
    raters = [j for j in range(nt) if s[j] > sum(s) / nt] or list(range(nt))
    alpha = [sum(m[i, j] for j in raters) / len(raters) for i in range(nv)]
    return plain_split(v, sorted(range(nv), key=lambda i: (-alpha[i], i)), k)


def plain_means(x: np.ndarray, carrier: np.ndarray) -> dict[int, np.ndarray]:
    return {int(c): x[carrier == c].mean(axis=0) for c in np.unique(carrier[carrier >= 0]) if (carrier == c).sum() > 1}


def rotate_half(x: np.ndarray) -> np.ndarray:
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def plain_vision_attention(name: str, model, seen: dict, vision: dict) -> list[np.ndarray]:
    """Per image, per LLM token: the attention the vision encoder's block gives it, recomputed plainly."""
    adapter = adapter_for(model)
    module = seen["module"]
    if name == "internvl":  # [CLS] query of the layer the features come from, heads averaged, [CLS] itself left out
        h = seen["args"][0]
        with torch.no_grad():
            q = module.q_norm(module.q_proj(h)).double().numpy()
            k = module.k_norm(module.k_proj(h)).double().numpy()
        tiles, _, dim = q.shape
        heads, hd = module.num_heads, dim // module.num_heads
        per_tile = []
        for tile in range(tiles):
            probs = []
            for head in range(heads):
                sl = slice(head * hd, (head + 1) * hd)
                logits = k[tile, :, sl] @ q[tile, 0, sl] * module.scale
                e = np.exp(logits - logits.max())
                probs.append(e / e.sum())
            a = np.mean(probs, axis=0)[1:]
            a = a / a.sum()
            side = int(math.isqrt(a.size)) // 2
            per_tile.append(a.reshape(side, 2, side, 2).mean(axis=(1, 3)).reshape(-1))
        tiles_per_image = vision["tiles_per_image"]
        starts = np.cumsum([0, *tiles_per_image])
        return [np.concatenate(per_tile[a:b]) for a, b in zip(starts[:-1], starts[1:])]
    hidden = seen["args"][0].double().numpy()
    cu = seen["kwargs"]["cu_seqlens"].tolist()
    cos, sin = (t.double().numpy() for t in seen["kwargs"]["position_embeddings"])
    n = hidden.shape[0]
    qkv = hidden @ module.qkv.weight.detach().double().numpy().T + module.qkv.bias.detach().double().numpy()
    qkv = qkv.reshape(n, 3, module.num_heads, -1)
    q, k = qkv[:, 0], qkv[:, 1]
    q = q * cos[:, None] + rotate_half(q) * sin[:, None]
    k = k * cos[:, None] + rotate_half(k) * sin[:, None]
    patch = np.zeros(n)
    for a, b in zip(cu[:-1], cu[1:]):
        for head in range(module.num_heads):
            logits = q[a:b, head] @ k[a:b, head].T * module.scaling
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            patch[a:b] += (e / e.sum(axis=1, keepdims=True)).mean(axis=0) / module.num_heads
    groups = patch.reshape(-1, 4).mean(axis=1)
    grid = vision["image_grid_thw"]
    if name == "qwen2_5_vl":  # the blocks see merge groups in window order
        from transformers.vision_utils import get_vision_window_index

        window_index, _ = get_vision_window_index(grid, 2, model.config.vision_config.window_size, adapter.patch_size)
        groups = groups[np.argsort(window_index.numpy())]
    sizes = (grid.prod(-1) // 4).tolist()
    return list(np.split(groups, np.cumsum(sizes)[:-1]))


# ---------------------------------------------------------------------------------------------
# Spies: what the registered methods were given and returned
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def spy(monkeypatch):
    calls: dict[str, list] = {"stage1": [], "stage2": []}

    def wrap(registry: dict, name: str, field: str, log: list) -> None:
        entry = registry[name]
        inner = getattr(entry, field)

        def recorded(arg):
            out = inner(arg)
            log.append((arg, out))
            return out

        monkeypatch.setitem(registry, name, dataclasses.replace(entry, **{field: recorded}))

    def install(stage1_name: str, stage2_name: str | None = None):
        wrap(methods.STAGE1_SCORERS, stage1_name, "choose", calls["stage1"])
        if stage2_name is not None:
            wrap(methods.STAGE2_SELECTORS, stage2_name, "select", calls["stage2"])
        return calls

    return install


def watch_block(model, name):
    """Capture what the runtime's ranking block receives (a hook of the test's own)."""
    adapter = adapter_for(model)
    if name == "internvl":
        layers = model.model.vision_tower.encoder.layer
        module = layers[model.config.vision_feature_layer % (len(layers) + 1) - 1].attention
    else:
        module = adapter.attention_block().attn
    seen: dict = {"module": module}

    def pre(mod, args, kwargs):
        seen["args"], seen["kwargs"] = tuple(a.clone() if torch.is_tensor(a) else a for a in args), dict(kwargs)

    return seen, module.register_forward_pre_hook(pre, with_kwargs=True)


def vision_dict(name, model, inputs):
    if name == "internvl":
        ids = inputs["input_ids"] == model.config.image_token_id
        return {"tiles_per_image": adapter_for(model).tiles_per_image(ids)}
    return {"image_grid_thw": inputs["image_grid_thw"]}


def layer_input(model, idx):
    seen = []

    def pre(module, args, kwargs):
        if not seen:
            seen.append((args[0] if args else kwargs["hidden_states"]).clone())

    return seen, adapter_for(model).text_model().layers[idx].register_forward_pre_hook(pre, with_kwargs=True)


def kept_rows(inputs, b, image_token_id, stats_b, kept_of) -> tuple[list[int], dict[tuple[int, int], int]]:
    """Positions a sample keeps (text and the given image tokens), and the row of each (image, token) among them."""
    slots = image_slots(inputs["input_ids"][b : b + 1], image_token_id, [stats_b])[0]
    valid = inputs["attention_mask"][b].bool()
    is_image = inputs["input_ids"][b] == image_token_id
    keep = set(torch.nonzero(valid & ~is_image).flatten().tolist())
    where = {}
    for i, (st, pos) in enumerate(zip(stats_b, slots)):
        for t in kept_of(st).tolist():
            keep.add(int(pos[t]))
            where[int(pos[t])] = (i, t)
    order = sorted(keep)
    return order, {where[p]: r for r, p in enumerate(order) if p in where}


# ---------------------------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------------------------
def test_adavtp_equals_the_paper_and_the_masked_reference(family, spy):
    name, processor, models, profile = family
    model = models()
    inputs = batch(processor, PROMPTS["batch3"])
    features = adapter_for(model).image_features(inputs)
    calls = spy("adavtp")
    seen, hook = watch_block(model, name)
    try:
        with erase.apply(model, profile, strategy="adavtp") as handle:
            out = generate(model, inputs)
            stats = handle.stats
    finally:
        hook.remove()
    ref = profile.methods.adavtp
    attention = plain_vision_attention(name, model, seen, vision_dict(name, model, inputs))
    flat = [st for s in stats for st in s]
    assert len(calls["stage1"]) == len(flat) == len(features)
    for g, ((choice, kept), st) in enumerate(zip(calls["stage1"], flat)):
        assert torch.equal(choice.features, features[g])  # the LLM's input features of this image
        np.testing.assert_allclose(choice.attention.numpy(), attention[g], rtol=1e-5, atol=1e-9)
        x, a = choice.features.double().numpy(), choice.attention.double().numpy()
        plain = plain_adavtp(x, a, choice.k, ref.erank_avg, ref.tau_max)
        assert kept.tolist() == plain == st.kept_stage1.tolist() == st.kept_stage2.tolist()
        assert choice.k == st.tokens_after_stage1 == max(1, int(st.tokens_total * 0.25))
    # only removal: the pruned run is the unpatched model with the dropped tokens masked
    ref_logits = masked_reference_logits(model, inputs, out.sequences, stats, NEW)
    assert (torch.stack(out.logits, dim=1) - ref_logits).abs().max().item() <= 1e-5


@pytest.mark.parametrize("layer", [None, 1])
def test_polymorphic_equals_the_paper_and_the_merged_reference(family, spy, layer):
    """layer None: the named strategy (layer 3); 1: inside Qwen3-VL's deep-stack layers."""
    name, processor, models, profile = family
    model = models()
    inputs = batch(processor, PROMPTS["batch3"])
    features = adapter_for(model).image_features(inputs)
    strategy = erase.named_strategy("polymorphic", 0.25)
    if layer is not None:
        strategy = dataclasses.replace(strategy, stage2_layer=layer)
    k = strategy.stage2_layer
    calls = spy("polymorphic", "polymorphic")
    seen, hook = watch_block(model, name)
    first, h0 = layer_input(model, 0)
    after, h1 = layer_input(model, k + 1)
    try:
        with erase.apply(model, profile, strategy=strategy) as handle:
            out = generate(model, inputs)
            stats = handle.stats
    finally:
        for h in (hook, h0, h1):
            h.remove()
    attention = plain_vision_attention(name, model, seen, vision_dict(name, model, inputs))
    flat = [st for s in stats for st in s]
    assert len(calls["stage1"]) == len(flat) and len(calls["stage2"]) == len(flat)
    image_id = model.config.image_token_id

    # Stage 1: selection and merge from the equations; the LLM input holds the means at the centres
    means1 = []
    for g, ((choice, merge), st) in enumerate(zip(calls["stage1"], flat)):
        assert torch.equal(choice.features, features[g])
        np.testing.assert_allclose(choice.attention.numpy(), attention[g], rtol=1e-5, atol=1e-9)
        x = choice.features.double().numpy()
        carrier = plain_polymorphic1(x, choice.attention.double().numpy(), choice.k)
        assert merge.carrier.tolist() == carrier.tolist() == st.merge_stage1.tolist()
        assert merge.keep.tolist() == sorted(set(carrier[carrier >= 0].tolist())) == st.kept_stage1.tolist()
        assert len(plain_means(x, carrier)) > 0  # something merged
        means1.append((x, carrier))
    g = 0
    for b, stats_b in enumerate(stats):
        order, row = kept_rows(inputs, b, image_id, stats_b, lambda st: st.kept_stage1)
        got = first[0][b, -len(order) :].double()
        text = model.get_input_embeddings()(inputs["input_ids"][b]).double()
        for r, pos in enumerate(order):
            if inputs["input_ids"][b, pos] != image_id:
                assert torch.equal(got[r], text[pos])
        for i, st in enumerate(stats_b):
            x, carrier = means1[g + i]
            merged = plain_means(x, carrier)
            for t in st.kept_stage1.tolist():
                want = merged.get(t, x[t])
                assert np.abs(got[row[i, t]].numpy() - want).max() <= 1e-6
        g += len(stats_b)

    # Stage 2: rater alignment and merge from the equations on the layer's hidden states
    means2 = []
    for (choice, merge), st in zip(calls["stage2"], flat):
        v, t = choice.vision.double().numpy(), choice.text.double().numpy()
        carrier = plain_polymorphic2(v, t, choice.k)
        assert merge.carrier.tolist() == carrier.tolist()
        assert choice.k == st.tokens_after_stage2 == max(1, int(st.tokens_total * 0.25))
        present = st.kept_stage1
        assert st.merge_stage2[present].tolist() == [int(present[c]) if c >= 0 else -1 for c in carrier]
        assert st.kept_stage2.tolist() == present[merge.keep].tolist()
        means2.append((v, carrier, present))
    g = 0
    for b, stats_b in enumerate(stats):
        order, row = kept_rows(inputs, b, image_id, stats_b, lambda st: st.kept_stage2)
        got = after[0][b, -len(order) :].double()
        for i, st in enumerate(stats_b):
            v, carrier, present = means2[g + i]
            for c, mean in plain_means(v, carrier).items():
                want = mean
                if name == "qwen3_vl" and k < adapter_for(model).deepstack_layers:
                    continue  # the deep-stack addition at k follows the merge; the reference below covers it
                assert np.abs(got[row[i, int(present[c])]].numpy() - want).max() <= 1e-6
        g += len(stats_b)

    # the whole run: the unpatched model with the means written at the centres, the rest masked
    ref_logits = masked_reference_logits(model, inputs, out.sequences, stats, NEW, evicted=False)
    assert (torch.stack(out.logits, dim=1) - ref_logits).abs().max().item() <= 1e-5


@pytest.mark.parametrize("method", ["adavtp", "polymorphic"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_batch_equals_samples_one_by_one(family, method, attn):
    name, processor, models, profile = family
    model = models(attn)
    prompts = PROMPTS["batch3"]
    with erase.apply(model, profile, strategy=method) as handle:
        out = generate(model, batch(processor, prompts))
        stats = handle.stats
        for b, prompt in enumerate(prompts):
            single = generate(model, batch(processor, [prompt]))
            one = handle.stats[0]
            for field in ("kept_stage1", "kept_stage2", "merge_stage1", "merge_stage2"):
                assert [None if getattr(st, field) is None else getattr(st, field).tolist() for st in one] == [
                    None if getattr(st, field) is None else getattr(st, field).tolist() for st in stats[b]
                ]
            assert single.sequences[0, -NEW:].tolist() == out.sequences[b, -NEW:].tolist()
            for step in range(NEW):
                assert (single.logits[step][0] - out.logits[step][b]).abs().max().item() <= 1e-5
    assert len(stats[2]) == 2  # two images in one prompt
