"""The ERASE schedule inside a model's forward passes, through hooks only.

A call of the model (a `generate()` prefill, or a plain forward) with images
moves through explicit phases:

- PREFILL: the entry pre-hook merges the vision features, runs Stage 1 on
  every image (a registered scorer, `erase.methods`, given the patch entropy,
  the image's features and the vision encoder's attention as it declares),
  drops the unkept vision tokens, writes merged tokens' means into their
  centres' slots, and keeps the original positions of the rest;
- PRUNED: after the Stage 2 layer k of a sample, its vision tokens are
  re-ranked (a registered selector: the instruction's attention, or the
  layer's hidden states, possibly merging), the dropped ones' KV entries are
  evicted from layers 0..k, and the layers after k get the pruned mask,
  rotary tables and positions;
- DECODE: each step gets a mask over the compacted cache and the unpruned
  run's positions.

The engine checks its own results, always: after prefill every layer's cache
must hold what the schedule says, and each decode step must continue the
unpruned numbering; otherwise it raises `EraseError` naming the transformers
release. Model specifics are the adapter's, decoder-layer plumbing is
`erase.decoder`'s, transformers internals are `erase._hf`'s, and the selection
rules are in `erase.stage1` / `erase.stage2` / `erase.methods`.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import _hf, methods, stage1
from .adapters.base import Adapter, PrefillInputs
from .decoder import Decoder
from .errors import EraseError
from .merging import Merge, group_means
from .packing import Repack
from .pixels import content_key
from .profile import Profile
from .strategy import Strategy


@dataclass
class ImageStats:
    """What ERASE did to one image of one sample."""

    tokens_total: int
    tokens_after_stage1: int
    tokens_after_stage2: int
    level: int  # 0 when the strategy never scores entropy (random, uniform, FastV)
    layer: int | None  # Stage 2 layer (0-based); None when Stage 1 already met the budget
    kv_evicted: int  # KV entries (token x layer) evicted retrospectively
    global_entropy: float  # nan when not computed
    kept_stage1: np.ndarray  # row-major token indices into the image grid
    kept_stage2: np.ndarray
    grid: tuple[int, int]
    # Methods that merge tokens (Polymorphic): per token of the grid, the token whose slot
    # carries it after the stage (itself when kept, its cluster centre when merged, -1 when
    # dropped or already gone); None for methods that do not merge (or a stage that did not run).
    merge_stage1: np.ndarray | None = None
    merge_stage2: np.ndarray | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}


@dataclass
class _Layout:
    """Which image token sits in each slot of the current (packed) sequence."""

    image: torch.Tensor  # [B, L] global image index, -1 for text and padding
    token: torch.Tensor  # [B, L] row-major token index within its image
    valid: torch.Tensor  # [B, L] bool

    def apply(self, repack: Repack) -> "_Layout":
        return _Layout(torch.where(repack.valid, repack.seq(self.image), -1), repack.seq(self.token), repack.valid)

    @property
    def width(self) -> int:
        return int(self.valid.shape[1])


class Phase(enum.Enum):
    PREFILL = "prefill"  # no Stage 2 prune yet in this call
    PRUNED = "pruned"  # pruned at `_Call.pruned_at`; later layers take `_Call.override`
    DECODE = "decode"


@dataclass
class _Call:
    layout: _Layout
    stats: list[list[ImageStats]]
    owner: list[int]  # sample of each global image
    budget: list[int]  # tokens each global image keeps after Stage 2
    first_row: torch.Tensor  # [images] row of each image's first token in the token features
    token_features: list[torch.Tensor]
    pending: dict[int, list[int]]  # Stage 2 layer -> samples pruned there
    last_position: torch.Tensor  # [B] highest original position of the prompt
    expected: list[int]  # per layer: cache entries the schedule leaves after prefill
    phase: Phase = Phase.PREFILL
    pruned_at: int = -1
    override: dict[str, Any] | None = None
    cache: Any = None  # the layers' cache (a plain forward creates it inside the language model)
    # Without eviction, layers up to a Stage 2 layer keep the wider layout in their
    # cache: (last layer of the group, valid slots of its prompt part), ascending.
    groups: list[tuple[int, torch.Tensor]] = dataclasses.field(default_factory=list)
    step_masks: dict[int, Any] = dataclasses.field(default_factory=dict)
    decoded: int = 0  # tokens decoded so far
    step_positions: torch.Tensor | None = None  # rotary positions of the current decode step

    def image_stats(self, g: int) -> ImageStats:
        b = self.owner[g]
        return self.stats[b][sum(1 for x in self.owner[:g] if x == b)]


class Engine:
    """Installs the hooks on a model and holds per-call state and stats."""

    def __init__(
        self, adapter: Adapter, profile: Profile, final_keep_ratio: float, strategy: Strategy, stage1_site: str
    ):
        self.adapter = adapter
        self.profile = profile
        self.final_keep_ratio = final_keep_ratio
        self.strategy = strategy
        self.stage1_site = stage1_site
        self.decoder = Decoder(adapter.text_model())
        self.entry_names = _hf.call_args(adapter.entry_module(), "entry")
        self.selector = methods.stage2_selector(strategy.stage2_selector)
        self.scorer = methods.stage1_scorer(strategy.stage1)
        self.reference = getattr(profile.methods, self.scorer.reference) if self.scorer.reference else None
        self.stats: list[list[ImageStats]] = []
        self._warned_range = False
        self._early: list[stage1.Stage1Result] | None = None  # Stage 1 done before the ViT
        self._call: _Call | None = None
        self._vision: dict[str, Any] | None = None
        self._attention: torch.Tensor | None = None  # the vision encoder's, for scorers that rank by it
        self._hooks: list[Any] = []

    # ------------------------------------------------------------------ install
    def install(self) -> None:
        entry = self.adapter.entry_module()
        self._hooks.append(entry.register_forward_pre_hook(self._entry_pre, with_kwargs=True))
        self._hooks.append(entry.register_forward_hook(self._entry_post, with_kwargs=True))
        self._hooks.append(self.adapter.watch_vision_input(self._capture))
        if self.scorer.uses_attention:
            self._hooks.append(self.adapter.watch_vision_attention(self._capture_attention))
        if self.stage1_site == "pixels":
            vision = self.adapter.vision_module()
            self._hooks.append(vision.register_forward_pre_hook(self._vision_pre, with_kwargs=True))
            self._hooks.append(vision.register_forward_hook(self._vision_post, with_kwargs=True))
        for i, layer in enumerate(self.decoder.layers):
            self._hooks.append(layer.register_forward_pre_hook(functools.partial(self._layer_pre, i), with_kwargs=True))
            self._hooks.append(layer.register_forward_hook(functools.partial(self._layer_post, i), with_kwargs=True))

    def remove(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._call = None
        self._vision = None
        self._attention = None
        self._early = None

    # ------------------------------------------------------------------ vision input
    def _capture(self, vision: dict[str, Any]) -> None:
        self._vision = vision
        self._attention = None  # the encoder's attention hook sets it again; stale attention is never used

    def _capture_attention(self, attention: torch.Tensor) -> None:
        self._attention = attention

    def _vision_pre(self, module, args, kwargs):
        _, grids = self.adapter.images_from_vision(self._vision, with_pixels=False)
        entropies = self._entropies(self._vision) if self.strategy.needs_entropy else [None] * len(grids)
        keys = self._image_keys(self._vision, len(grids))
        self._early = [self._stage1(pe, grid, g, image_key=keys[g]) for g, (pe, grid) in enumerate(zip(entropies, grids))]
        return self.adapter.prune_vision_input(args, kwargs, [r.keep_indices for r in self._early])

    def _vision_post(self, module, args, kwargs, output):
        keep = [r.keep_indices for r in self._early]
        return self.adapter.expand_vision_output(output, keep, self._vision["image_grid_thw"])

    # ------------------------------------------------------------------ entry
    def _entry_pre(self, module, args, kwargs):
        call = _hf.CallArgs(self.entry_names, args, kwargs)
        _hf.check_cache(call.cache)
        past = _hf.layer_length(call.cache, 0)
        if past == 0:
            self._call = None
            if not self.adapter.has_images(call):
                return None
            return args, self._prefill(call)
        state = self._call
        if state is None or state.phase is not Phase.DECODE:
            if self.adapter.has_images(call):
                # Left alone, the model would run this prompt's images unpruned while ERASE looks applied.
                raise EraseError(
                    f"ERASE cannot prune images in a prompt that continues a KV cache it did not fill ({past} entries "
                    "already cached, e.g. a reused prompt-prefix cache): pass the whole prompt without past_key_values"
                )
            return None  # a text-only continuation of a cache ERASE did not fill: not ours to follow
        return args, self._decode_step(state, call, past)

    def _entry_post(self, module, args, kwargs, output):
        state = self._call
        if state is None or state.phase is Phase.DECODE:
            return None
        state.phase = Phase.DECODE
        state.override = None
        state.groups.append((len(self.decoder) - 1, state.layout.valid))
        self._check_cache(state)
        return None

    def _check_cache(self, state: _Call) -> None:
        """After prefill: every layer's cache holds exactly what the schedule kept."""
        if state.cache is None:
            return
        found = _hf.layer_lengths(state.cache)
        if found != state.expected:
            raise EraseError(
                f"the KV cache after prefill does not follow ERASE's schedule (entries per layer: expected "
                f"{state.expected}, found {found}){_hf.version.where()}"
            )

    def _decode_step(self, state: _Call, call: _hf.CallArgs, past: int) -> dict[str, Any]:
        if past != state.expected[0] + state.decoded:
            raise EraseError(
                f"decoding found {past} cached entries in layer 0, expected {state.expected[0] + state.decoded}: "
                f"positions would not continue the unpruned numbering{_hf.version.where()}"
            )
        q = self._query_length(call)
        valid = state.groups[0][1]
        step = state.decoded + torch.arange(q, device=valid.device)
        nxt = (state.last_position[:, None] + 1 + step[None]).unsqueeze(0).expand(self.adapter.position_rows, -1, -1)
        state.decoded += q
        state.step_masks = {}
        rows = self.adapter.position_rows
        want = nxt if rows > 1 else nxt[0]
        given = call["position_ids"]
        if given is None:
            positions = want
        else:  # generate() numbers decode steps itself: it must agree with the unpruned run
            tail = given[-rows:] if rows > 1 else given
            if tail.shape != want.shape or not torch.equal(tail.to(want.device), want):
                raise EraseError(
                    "the decode step's position_ids do not continue the unpruned run's numbering"
                    f"{_hf.version.where()}"
                )
            positions = given
        state.step_positions = want
        return call.replaced(attention_mask=self._decode_attention(valid, past, q), position_ids=positions)

    @staticmethod
    def _decode_attention(valid: torch.Tensor, cached: int, q: int) -> torch.Tensor:
        """Prompt slots as kept, then every generated token."""
        extra = torch.ones(valid.shape[0], cached + q - valid.shape[1], dtype=torch.long, device=valid.device)
        return torch.cat([valid.long(), extra], dim=1)

    @staticmethod
    def _query_length(call: _hf.CallArgs) -> int:
        for key in ("input_ids", "inputs_embeds"):
            if call[key] is not None:
                return int(call[key].shape[1])
        raise EraseError("the model was called with neither input_ids nor inputs_embeds")

    # ------------------------------------------------------------------ Stage 1
    def _prefill(self, call: _hf.CallArgs) -> dict[str, Any]:
        # generate(use_cache=False) re-runs prefill on features encoded once, so the
        # capture stays until the vision encoder runs again.
        inputs = self.adapter.prepare_prefill(call, lambda: self._vision)
        bsz, length = inputs.attention.shape
        device = inputs.inputs_embeds.device
        image = torch.full((bsz, length), -1, dtype=torch.long, device=device)
        token = torch.zeros((bsz, length), dtype=torch.long, device=device)
        keep_mask = inputs.attention.clone()
        stats: list[list[ImageStats]] = [[] for _ in range(bsz)]
        owner, budget, first_row = [], [], [0]
        layer_of_sample: dict[int, int] = {}
        needs_entropy = self._early is None and self.strategy.needs_entropy
        entropies = self._entropies(inputs.vision) if needs_entropy else None
        attention = self._token_attention(inputs) if self.scorer.uses_attention else None
        keys = self._image_keys(inputs.vision, len(inputs.image_grid)) if self._early is None else None
        merges: list[tuple[int, torch.Tensor, int, Merge]] = []  # (sample, slots, first feature row, merge)
        g = 0
        for b, per_image in enumerate(inputs.image_slots):
            for slots in per_image:
                if self._early is not None:
                    result = self._early[g]
                else:
                    result = self._stage1(
                        None if entropies is None else entropies[g],
                        inputs.image_grid[g],
                        g,
                        features=inputs.inputs_embeds[b, slots] if self.scorer.uses_features else None,
                        attention=None if attention is None else attention[g],
                        image_key=keys[g],
                    )
                if result.carrier is not None:
                    merges.append((b, slots, first_row[-1], Merge(result.keep_indices, result.carrier)))
                self._check_pixel_range(result.tokens_total)
                image[b, slots] = g
                token[b, slots] = torch.arange(slots.numel(), device=device)
                dropped = np.ones(slots.numel(), dtype=bool)
                dropped[result.keep_indices] = False
                keep_mask[b, slots[torch.from_numpy(dropped).to(device)]] = False
                layer = None if result.skip_stage2 or not self.strategy.stage2 else result.stage2_layer
                if layer is not None:
                    layer_of_sample[b] = max(layer, layer_of_sample.get(b, -1))  # the deepest layer wins
                stats[b].append(
                    ImageStats(
                        tokens_total=result.tokens_total,
                        tokens_after_stage1=result.tokens_kept,
                        tokens_after_stage2=result.tokens_kept,
                        level=result.level,
                        layer=layer,
                        kv_evicted=0,
                        global_entropy=result.global_entropy,
                        kept_stage1=result.keep_indices,
                        kept_stage2=result.keep_indices,
                        grid=result.grid,
                        merge_stage1=result.carrier,
                    )
                )
                owner.append(b)
                budget.append(stage1.final_count(result.tokens_total, self.final_keep_ratio))
                first_row.append(first_row[-1] + slots.numel())
                g += 1
        # an image that skipped Stage 2 still prunes at its sample's layer if a sibling needs one
        for b, layer in layer_of_sample.items():
            for st in stats[b]:
                if st.layer is not None:
                    st.layer = layer
        pending: dict[int, list[int]] = {}
        for b, layer in sorted(layer_of_sample.items()):
            pending.setdefault(layer, []).append(b)
        if merges:
            self._merge_stage1(inputs, merges)

        repack = Repack.from_keep([torch.nonzero(keep_mask[b]).flatten() for b in range(bsz)], device)
        layout = _Layout(image, token, inputs.attention).apply(repack)
        last = inputs.position_ids.masked_fill(~inputs.attention[None], -1).amax(dim=(0, 2))
        self._call = _Call(
            layout=layout,
            stats=stats,
            owner=owner,
            budget=budget,
            first_row=torch.tensor(first_row[:-1], dtype=torch.long, device=device),
            token_features=inputs.token_features,
            pending=pending,
            last_position=last.to(device),
            expected=[0] * len(self.decoder),
        )
        self.stats = stats
        return self.adapter.prefill_kwargs(call, inputs, repack)

    def _token_attention(self, inputs: PrefillInputs) -> list[torch.Tensor]:
        if self._attention is None:
            raise EraseError("ERASE saw no vision-encoder attention for this prompt's images")
        attention = self.adapter.token_attention(self._attention, inputs.vision)
        if [a.numel() for a in attention] != [h * w for h, w in inputs.image_grid]:
            raise EraseError("the vision encoder's attention does not match this prompt's images")
        return attention

    def _merge_stage1(self, inputs: PrefillInputs, merges: list[tuple[int, torch.Tensor, int, Merge]]) -> None:
        """Each cluster's mean into its centre's slot: the embeddings, and the per-token features (deep-stack)."""
        embeds = inputs.inputs_embeds.clone()
        features = [f.clone() for f in inputs.token_features]
        for b, slots, first, merge in merges:
            where, means = group_means(inputs.inputs_embeds[b, slots], merge)
            embeds[b, slots[torch.from_numpy(where).to(slots.device)]] = means.to(embeds.dtype)
            for f in features:
                rows = torch.arange(first, first + slots.numel(), device=f.device)
                where, means = group_means(f[rows], merge)
                f[rows[torch.from_numpy(where).to(f.device)]] = means.to(f.dtype)
        inputs.inputs_embeds = embeds
        inputs.token_features = features

    def _check_pixel_range(self, tokens: int) -> None:
        """Warn once per handle about an image resized outside the pixel range the profile saw."""
        if not self.strategy.needs_entropy:  # no entropy thresholds to be off (random, FastV, AdaVTP, ...)
            return
        lo, hi = self.profile.image_processing.min_pixels, self.profile.image_processing.max_pixels
        pixels = tokens * self.adapter.pixels_per_token() ** 2
        if self._warned_range or ((lo is None or pixels >= lo) and (hi is None or pixels <= hi)):
            return
        self._warned_range = True
        warnings.warn(
            f"an image was resized to {pixels} pixels, outside the range profile {self.profile.name!r} was "
            f"calibrated at [{lo}, {hi}]: its entropies are not the ones the thresholds were fitted on; create the "
            f"processor with min_pixels={lo}, max_pixels={hi}",
            stacklevel=2,
        )

    def _image_keys(self, vision: dict[str, Any] | None, count: int) -> list[int]:
        """Per image, a key of its pixels for scorers that draw per image (else zeros)."""
        if not self.scorer.keyed:
            return [0] * count
        if vision is None or vision.get("pixel_values") is None:
            raise EraseError(f"Stage 1 scorer {self.scorer.name!r} draws per image from its pixels; this call passed none")
        keys = [content_key(px) for px in self.adapter.image_pixels(vision)]
        if len(keys) != count:
            raise EraseError(f"found the pixels of {len(keys)} images for {count} images in the prompt")
        return keys

    def _entropies(self, vision: dict[str, Any]) -> list[np.ndarray]:
        """Each image's patch entropies, read from the vision input where it lives."""
        return self.adapter.patch_entropies(vision, self.profile.stage1.entropy.grayscale_rounding)

    def _stage1(
        self,
        entropy: np.ndarray | None,
        grid: tuple[int, int],
        image_no: int,
        features: torch.Tensor | None = None,
        attention: torch.Tensor | None = None,
        image_key: int = 0,
    ) -> stage1.Stage1Result:
        """Stage 1 for one image: ERASE's entropy ranking, or the strategy's scorer."""
        st = self.strategy
        total = grid[0] * grid[1]
        if st.needs_entropy:
            if entropy is None or entropy.shape != tuple(grid):
                raise EraseError(f"Stage 1 scored {None if entropy is None else entropy.shape} patches for a {grid} token grid")
            result = stage1.select(entropy, self.profile, self.final_keep_ratio)
        else:
            everything = np.arange(total, dtype=np.int64)
            result = stage1.Stage1Result(grid, None, math.nan, 0, 1.0, everything, st.stage2_layer or 0, False)
        if st.stage2_layer is not None:
            result = dataclasses.replace(result, stage2_layer=st.stage2_layer)
        if st.stage1 == "entropy" and st.stage1_keep_ratio is None:
            return result
        ratio = 1.0 if self.scorer.keeps_all else (st.stage1_keep_ratio or result.keep_ratio)
        ratio = max(ratio, self.final_keep_ratio)
        k = max(1, stage1.keep_count(total, ratio))
        choice = methods.TokenChoice(
            total, k, result.patch_entropy, st.seed, image_no, features, attention, self.reference, image_key
        )
        keep = self.scorer.choose(choice)
        carrier = None
        if isinstance(keep, Merge):
            keep, carrier = keep.keep, keep.carrier
        final = stage1.final_count(total, self.final_keep_ratio)
        return dataclasses.replace(result, keep_ratio=ratio, keep_indices=keep, skip_stage2=k <= final, carrier=carrier)

    # ------------------------------------------------------------------ decoder layers
    def _layer_pre(self, idx, module, args, kwargs):
        state = self._call
        if state is None:
            return None
        call = self.decoder.call(args, kwargs)
        if state.phase is Phase.PREFILL:
            if idx == 0:
                state.cache = call.cache
            return None
        if state.phase is Phase.PRUNED:
            return None if idx <= state.pruned_at else (args, {**kwargs, **state.override})
        if idx == 0:
            self._check_step_positions(call, state.step_positions)
        if len(state.groups) == 1 or idx <= state.groups[0][0]:
            return None  # the entry hook's mask already fits this layer's cache
        g = next(i for i, (last, _) in enumerate(state.groups) if idx <= last)
        if g not in state.step_masks:
            hidden = call.hidden
            cached = _hf.layer_length(call.cache, idx)
            attention = self._decode_attention(state.groups[g][1], cached, hidden.shape[1])
            state.step_masks[g] = self.decoder.mask(idx, hidden, attention, call.cache)
        return args, call.replaced(attention_mask=state.step_masks[g])

    def _check_step_positions(self, call: _hf.CallArgs, positions: torch.Tensor) -> None:
        """The rotary tables layer 0 was given are those of the unpruned run's next positions."""
        cos, sin = call["position_embeddings"]
        want_cos, want_sin = self.decoder.rotary_tables(call.hidden, positions.to(call.hidden.device))
        if not (torch.equal(cos, want_cos) and torch.equal(sin, want_sin)):
            raise EraseError(
                f"a decode step was not rotated at the unpruned run's positions{_hf.version.where()}"
            )

    def _layer_post(self, idx, module, args, kwargs, output):
        state = self._call
        if state is None or state.phase is Phase.DECODE:
            return None
        state.expected[idx] = state.layout.width
        hidden_out = output if isinstance(output, torch.Tensor) else output[0]
        new_hidden = None
        if idx in state.pending:
            call = self.decoder.call(args, kwargs)
            new_hidden = self._stage2(idx, state, call, hidden_out)
            hidden_out = new_hidden
        if state.token_features:
            rows = torch.where(state.layout.image >= 0, state.first_row[state.layout.image.clamp_min(0)] + state.layout.token, -1)
            added = self.adapter.layer_output(idx, hidden_out, rows, state.token_features)
            if added is not None:
                new_hidden = added
        if new_hidden is None:
            return None
        return new_hidden if isinstance(output, torch.Tensor) else (new_hidden, *output[1:])

    # ------------------------------------------------------------------ Stage 2
    def _stage2(self, idx: int, state: _Call, call: _hf.CallArgs, hidden_out: torch.Tensor) -> torch.Tensor:
        hidden_in = call.hidden
        layout = state.layout
        by_hidden = self.selector.select is not None
        keys = None if by_hidden else self.decoder.keys(idx, call)  # [B, H, L, D]
        scaling = self.decoder.scaling(idx)
        keep: list[torch.Tensor] = []
        merged: list[tuple[int, torch.Tensor, torch.Tensor]] = []  # (sample, centre slots, means)
        for b in range(hidden_in.shape[0]):
            valid = layout.valid[b]
            slots = torch.nonzero(valid).flatten()
            if b not in state.pending[idx]:
                keep.append(slots)
                continue
            is_image = layout.image[b] >= 0
            first_image = int(torch.nonzero(is_image).flatten()[0])
            after = torch.arange(valid.numel(), device=valid.device) > first_image
            queries = torch.nonzero(valid & ~is_image & after).flatten()
            if queries.numel() == 0:  # prompt ends with the image: the last token asks
                queries = slots[-1:]
            if not by_hidden:
                q = self.decoder.rotated_queries(idx, call, queries, b)
                scores = self.selector.score(q, keys[b], queries, valid, scaling)
            keep_b = valid & ~is_image
            for g in torch.unique(layout.image[b][is_image]).tolist():
                st = state.image_stats(g)
                cand = torch.nonzero(layout.image[b] == g).flatten()
                if st.layer is None:  # Stage 1 already at budget: keep its tokens
                    keep_b[cand] = True
                    continue
                if by_hidden:
                    chosen = self._select_hidden(b, g, state, hidden_out, cand, queries, merged)
                else:
                    chosen = cand[self.selector.choose(scores[cand], state.budget[g])]
                keep_b[chosen] = True
                st.kept_stage2 = np.sort(layout.token[b, chosen].cpu().numpy())
                st.tokens_after_stage2 = int(chosen.numel())
                if self.strategy.evict:
                    st.kv_evicted = (st.tokens_after_stage1 - st.tokens_after_stage2) * (idx + 1)
            keep.append(torch.nonzero(keep_b).flatten())
        if merged:  # each cluster's mean into its centre's slot, before the repack
            hidden_out = hidden_out.clone()
            for b, slots, means in merged:
                hidden_out[b, slots] = means.to(hidden_out.dtype)
        repack = Repack.from_keep(keep, hidden_in.device)
        if self.strategy.evict:
            _hf.evict_layers(call.cache, idx, lambda t: repack.seq(t, dim=2))
            if call.cache is not None:
                state.expected[: idx + 1] = [repack.width] * (idx + 1)
        else:
            state.groups.append((idx, layout.valid))
        state.layout = layout.apply(repack)
        new_hidden = repack.seq(hidden_out)
        state.override = self.decoder.after_prune(idx, new_hidden, call, repack, state.layout.valid)
        state.pruned_at = idx
        state.phase = Phase.PRUNED
        return new_hidden

    def _select_hidden(
        self,
        b: int,
        g: int,
        state: _Call,
        hidden_out: torch.Tensor,
        cand: torch.Tensor,
        queries: torch.Tensor,
        merged: list[tuple[int, torch.Tensor, torch.Tensor]],
    ) -> torch.Tensor:
        """One image's kept slots by a hidden-state selector; merges go to `merged` and the per-token features."""
        out = self.selector.select(methods.HiddenChoice(hidden_out[b, cand], hidden_out[b, queries], state.budget[g]))
        if not isinstance(out, Merge):
            return cand[torch.as_tensor(out, dtype=torch.long, device=cand.device)]
        keep = torch.from_numpy(out.keep).to(cand.device)
        where, means = group_means(hidden_out[b, cand], out)
        tokens = state.layout.token[b, cand]
        if where.size:
            merged.append((b, cand[torch.from_numpy(where).to(cand.device)], means))
            rows = state.first_row[g] + tokens  # later deep-stack additions carry the clusters' means too
            state.token_features = [f.clone() for f in state.token_features]
            for f in state.token_features:
                w, m = group_means(f[rows.to(f.device)], out)
                f[rows[torch.from_numpy(w).to(rows.device)].to(f.device)] = m.to(f.dtype)
        st = state.image_stats(g)
        carrier = np.full(st.tokens_total, -1, dtype=np.int64)
        alive = out.carrier >= 0
        tok = tokens.cpu().numpy()
        carrier[tok[alive]] = tok[out.carrier[alive]]
        st.merge_stage2 = carrier
        return cand[keep]
