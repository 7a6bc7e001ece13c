"""Oracles for adapter tests: tiny profiles, test images and the masked reference.

The masked reference runs the *unpatched* model over the whole sequence
(prompt + generated tokens) in one forward, with the pruned tokens masked out
of attention instead of removed: Stage 1 drops at every layer, Stage 2 drops
at layers after k for prompt queries and at every layer for generated tokens
(which, in the pruned run, see an evicted cache).

For methods that merge tokens (`ImageStats.merge_stage1` / `merge_stage2`),
the reference also writes each cluster's mean into its centre's position,
computed from the reference's own values: the LLM input embeddings (and
Qwen3-VL's deep-stack features) for Stage 1, the input of layer k + 1 for
Stage 2 (and the deep-stack features of the layers after k).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

import erase
from erase.adapters import adapter_for
from erase.profile import Calibration, ImageProcessing, ModelInfo, Profile, Stage1, Stage2


def tiny_profile(
    model,
    keep_ratios=(0.9, 0.8, 0.6, 0.5),
    thresholds=(3.0, 2.0, 1.0),
    final=0.25,
    early=1,
    late=2,
    min_pixels=None,
    max_pixels=None,
) -> Profile:
    fingerprint = adapter_for(model).fingerprint()
    return Profile(
        name="tiny",
        profile_version=1,
        model=ModelInfo(id=f"tiny-{fingerprint.family}", fingerprint=fingerprint),
        image_processing=ImageProcessing(min_pixels, max_pixels),
        stage1=Stage1(thresholds=tuple(thresholds), keep_ratios=tuple(keep_ratios)),
        stage2=Stage2(early_layer=early, late_layer=late, early_levels=(3, 4), final_keep_ratio=final),
        calibration=Calibration(source="manual", toolkit_version=erase.__version__, date="2026-11-21"),
    )


def keep_all_profile(model) -> Profile:
    return tiny_profile(model, keep_ratios=(1.0, 1.0, 1.0, 1.0), final=1.0)


def make_image(height: int = 224, width: int = 224, seed: int = 0) -> Image.Image:
    """A deterministic RGB image with smooth regions, edges and noise (varied patch entropy)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    r = 127 + 100 * np.sin(xx / (7 + seed % 5)) * np.cos(yy / 11)
    g = 255 * (xx + yy) / max(1, height + width)
    b = np.where((xx // 32 + yy // 32) % 2 == 0, 40.0, 220.0)
    img = np.stack([r, g, b], axis=-1)
    noisy = (yy > height / 2) & (xx > width / 2)
    img[noisy] += rng.normal(0, 60, size=(int(noisy.sum()), 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="RGB")


def make_messages(text: str = "Describe the image.", n_images: int = 1, image_first: bool = True) -> list[dict]:
    """A one-turn user message with ``n_images`` image entries before (or after) the text."""
    images = [{"type": "image"} for _ in range(n_images)]
    text_part = [{"type": "text", "text": text}]
    content = images + text_part if image_first else text_part + images
    return [{"role": "user", "content": content}]


def simple_image(height: int = 224, width: int = 224, seed: int = 0) -> Image.Image:
    """A flat page with a few shapes: low entropy, so the early Stage 2 layer."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (width, height), (245, 245, 240))
    d = ImageDraw.Draw(im)
    for _ in range(3):
        x, y = (int(v) for v in rng.integers(0, min(width, height) - 30, 2))
        d.rectangle([x, y, x + 20, y + 12], fill=tuple(int(c) for c in rng.integers(0, 200, 3)))
    return im


def image_slots(input_ids: torch.Tensor, image_token_id: int, stats) -> list[list[torch.Tensor]]:
    """Per sample, per image: prompt positions of its tokens (images in order)."""
    out = []
    for b, per_image in enumerate(stats):
        where = torch.nonzero(input_ids[b] == image_token_id).flatten()
        slots, start = [], 0
        for st in per_image:
            slots.append(where[start : start + st.tokens_total])
            start += st.tokens_total
        out.append(slots)
    return out


def masked_reference_logits(
    model, inputs: dict, sequences: torch.Tensor, stats, new_tokens: int, evicted: bool = True
) -> torch.Tensor:
    """Logits [B, new_tokens, V] of the unpatched model with pruned tokens masked, not removed.

    evicted=False is the FastV-style schedule: Stage 2 drops stay visible at
    layers <= k for generated tokens too.
    """
    prompt_len = inputs["input_ids"].shape[1]
    seq = sequences[:, : prompt_len + new_tokens - 1]
    bsz, total = seq.shape
    attn = torch.cat([inputs["attention_mask"], torch.ones(bsz, total - prompt_len, dtype=torch.long)], dim=1)
    # the model's other inputs (pixels, grids), and positions as generate() numbers them
    extra = {k: v for k, v in inputs.items() if k not in ("input_ids", "attention_mask", "mm_token_type_ids")}
    if "mm_token_type_ids" in inputs:  # M-RoPE models place image tokens from their types
        mm_types = inputs["mm_token_type_ids"]
        extra["mm_token_type_ids"] = torch.cat([mm_types, mm_types.new_zeros(bsz, total - prompt_len)], dim=1)
    else:  # plain RoPE: generate() counts the unpadded tokens
        extra["position_ids"] = (attn.cumsum(-1) - 1).clamp_min(0)
    n_layers = adapter_for(model).num_layers()
    drop1 = torch.zeros(bsz, total, dtype=torch.bool)
    drop2 = torch.zeros(bsz, total, dtype=torch.bool)
    layer_of = [n_layers] * bsz
    slots = image_slots(inputs["input_ids"], model.config.image_token_id, stats)
    merges1: list[tuple[int, int, torch.Tensor]] = []  # (sample, centre position, member positions)
    merges2: list[tuple[int, int, torch.Tensor]] = []
    for b, per_image in enumerate(stats):
        for st, pos in zip(per_image, slots[b]):
            merges1 += _clusters(b, pos, getattr(st, "merge_stage1", None))
            merges2 += _clusters(b, pos, getattr(st, "merge_stage2", None))
            kept1 = np.zeros(st.tokens_total, bool)
            kept1[st.kept_stage1] = True
            kept2 = np.zeros(st.tokens_total, bool)
            kept2[st.kept_stage2] = True
            drop1[b, pos[torch.from_numpy(~kept1)]] = True
            drop2[b, pos[torch.from_numpy(kept1 & ~kept2)]] = True
            if st.layer is not None:
                layer_of[b] = st.layer
    causal = torch.tril(torch.ones(total, total, dtype=torch.bool))
    generated = torch.arange(total) >= prompt_len
    dtype = model.dtype
    masks = []
    for i in range(n_layers):
        allowed = causal[None] & attn.bool()[:, None, :] & ~drop1[:, None, :]
        for b in range(bsz):
            if i > layer_of[b]:
                allowed[b] &= ~drop2[b][None, :]
            elif evicted:  # generated tokens see the evicted cache at every layer
                allowed[b, generated] &= ~drop2[b][None, :]
        m = torch.zeros(bsz, 1, total, total, dtype=dtype)
        masks.append(m.masked_fill(~allowed[:, None], torch.finfo(dtype).min))

    layer2 = {b: layer_of[b] for b, _, _ in merges2}

    def text_pre(module, args, kwargs):  # Stage 1 means (and deep-stack features) at the centres
        kwargs = dict(kwargs)
        kwargs["inputs_embeds"] = _merged(kwargs["inputs_embeds"], merges1)
        deepstack, where = kwargs.get("deepstack_visual_embeds"), kwargs.get("visual_pos_masks")
        if deepstack is not None and where is not None:
            row = (where.flatten().long().cumsum(0) - 1).view(where.shape)  # row of each visual position
            rows1 = [(b, int(row[b, c]), row[b, m]) for b, c, m in merges1]
            rows2 = [(b, int(row[b, c]), row[b, m]) for b, c, m in merges2]
            kwargs["deepstack_visual_embeds"] = [
                _merged_rows(_merged_rows(f, rows1), [r for r in rows2 if layer2[r[0]] < i]) for i, f in enumerate(deepstack)
            ]
        return args, kwargs

    hooks = [adapter_for(model).text_model().register_forward_pre_hook(text_pre, with_kwargs=True)] if merges1 or merges2 else []
    layers = adapter_for(model).text_model().layers
    for i, layer in enumerate(layers):
        # Stage 2 means at the centres, from the output of layer k (as layer k + 1 receives it)
        here = [m for m in merges2 if layer_of[m[0]] + 1 == i]

        def pre(module, args, kwargs, i=i, here=here):
            if here:
                hidden = _merged(args[0] if args else kwargs["hidden_states"], here)
                args = (hidden, *args[1:]) if args else args
                if not args:
                    kwargs = {**kwargs, "hidden_states": hidden}
            return args, {**kwargs, "attention_mask": masks[i]}

        hooks.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
    if any(layer_of[b] + 1 >= len(layers) for b, _, _ in merges2):
        raise NotImplementedError("the masked reference merges Stage 2 tokens at the next layer's input; k is the last layer")
    try:
        with torch.no_grad():
            out = model(input_ids=seq, attention_mask=attn, use_cache=False, **extra)
    finally:
        for h in hooks:
            h.remove()
    return out.logits[:, prompt_len - 1 :]


def _clusters(b: int, pos: torch.Tensor, carrier) -> list[tuple[int, int, torch.Tensor]]:
    """(sample, centre position, member positions) of every cluster with more than one member."""
    if carrier is None:
        return []
    carrier = np.asarray(carrier)
    out = []
    for centre in np.unique(carrier[carrier >= 0]).tolist():
        members = np.flatnonzero(carrier == centre)
        if members.size > 1:
            out.append((b, int(pos[centre]), pos[torch.from_numpy(members)]))
    return out


def _merged(hidden: torch.Tensor, clusters: list[tuple[int, int, torch.Tensor]]) -> torch.Tensor:
    """[B, L, D] with each centre position holding its members' mean (float64, cast back)."""
    if not clusters:
        return hidden
    hidden = hidden.clone()
    means = [(b, c, hidden[b, m].double().mean(dim=0)) for b, c, m in clusters]
    for b, c, mean in means:
        hidden[b, c] = mean.to(hidden.dtype)
    return hidden


def _merged_rows(rows: torch.Tensor, clusters: list[tuple[int, int, torch.Tensor]]) -> torch.Tensor:
    """[N, D] rows with each centre row holding its members' rows' mean."""
    if not clusters:
        return rows
    rows = rows.clone()
    means = [(c, rows[m].double().mean(dim=0)) for _, c, m in clusters]
    for c, mean in means:
        rows[c] = mean.to(rows.dtype)
    return rows


def vision_output(model, inputs) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The vision tower's merged features (LLM order) and deep-stack features, if any, for a forward.

    Copies: the model splits them per image after the tower returns.
    """
    seen = []

    def grab(module, args, out):
        seen.append((out.pooler_output.clone(), [f.clone() for f in getattr(out, "deepstack_features", None) or []]))

    h = model.model.visual.register_forward_hook(grab)
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        h.remove()
    return seen[0]
