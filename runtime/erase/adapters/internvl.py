"""InternVL plumbing (transformers 5.x `InternVLForConditionalGeneration`, e.g. InternVL3-*-hf).

The processor crops each image into square tiles (448 px on InternVL3, row by
row) plus a thumbnail of the whole image when there is more than one tile.
The ViT sees 14 px patches of each tile; a pixel shuffle with ratio 0.5 then
merges 2x2 patches into one LLM token, so token t of a tile covers the 28x28 px
region at row t // (S/28), column t % (S/28) of that tile (S the tile side).

Stage 1 pools the tokens of all tiles *and* the thumbnail of an image into one
ranking (ERASE App. D.3): the image is presented to the engine as its tiles
stacked top to bottom, a (n_tiles * S) x S picture whose row-major 28 px
patches are exactly the image's LLM tokens in prompt order. Its global
entropy is the lower median over all of them; `ImageStats.grid` is
(n_tiles * S/28, S/28).

Positions are plain 1-D RoPE ids (the LLM is Qwen2/2.5); kept tokens keep
their original ids. Images are told apart by their runs of context tokens
(each image is wrapped in <img> ... </img> by the processor).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .. import _hf
from ..errors import EraseError
from ..packing import Repack
from ..pixels import IMAGENET_MEAN, IMAGENET_STD, gray_image_entropy, gray_levels, tiles_to_uint8
from ..profile import Fingerprint
from .base import PrefillInputs, register_adapter
from .common import MultimodalAdapter, Restore, is_model_type, scatter_features, split_slots, wrap_image_features


def _side(value: Any) -> int:
    """A square size given as an int or an (h, w) pair."""
    if isinstance(value, (list, tuple)):
        if value[0] != value[1]:
            raise EraseError(f"ERASE needs square InternVL tiles and patches, got {tuple(value)}")
        return int(value[0])
    return int(value)


def _shuffle(config: Any) -> int:
    """Patches per side that the pixel shuffle merges into one token (2 for ratio 0.5)."""
    factor = 1 / config.downsample_ratio
    if abs(factor - round(factor)) > 1e-6:
        raise EraseError(f"ERASE needs a downsample_ratio of 1/n, got {config.downsample_ratio}")
    return round(factor)


@register_adapter(is_model_type("internvl"))
class InternVLAdapter(MultimodalAdapter):
    family = "internvl"
    model_types = ("internvl",)
    position_rows = 1
    supports_vision_attention = True
    # The InternVL3 processors normalise with the ImageNet statistics.
    image_mean: tuple[float, ...] = IMAGENET_MEAN
    image_std: tuple[float, ...] = IMAGENET_STD

    def __init__(self, model: nn.Module):
        super().__init__(model)
        config = model.config
        self.token_px = _side(config.vision_config.patch_size) * _shuffle(config)
        self.tile_px = _side(config.vision_config.image_size)
        if self.tile_px % self.token_px:
            raise EraseError(f"InternVL tile side {self.tile_px} is not a multiple of the token size {self.token_px}")
        self.tokens_per_tile = (self.tile_px // self.token_px) ** 2
        self.shuffle = _shuffle(config)

    @classmethod
    def fingerprint_from_config(cls, config: Any) -> Fingerprint:
        tc = config.get_text_config()
        ppt = _side(config.vision_config.patch_size) * _shuffle(config)
        return Fingerprint(cls.family, ppt, tc.num_hidden_layers, tc.hidden_size)

    # ---- structure
    def vision_module(self) -> nn.Module:
        return self.mm.vision_tower

    def watch_vision_input(self, callback: Callable[[dict[str, Any]], None]) -> Restore:
        def seen(pixel_values, *args, **kwargs):
            callback({"pixel_values": pixel_values})

        return wrap_image_features(self.mm, seen)

    # ---- prefill
    def tiles_per_image(self, image_mask: torch.Tensor) -> list[int]:
        """Tiles of each image (batch order), from the runs of context tokens."""
        tiles = []
        for row in image_mask.long():
            edges = torch.diff(torch.cat([row.new_zeros(1), row, row.new_zeros(1)]))
            starts, ends = torch.nonzero(edges == 1).flatten(), torch.nonzero(edges == -1).flatten()
            for n in (ends - starts).tolist():
                if n % self.tokens_per_tile:
                    raise EraseError(
                        f"an image has {n} context tokens, not a multiple of {self.tokens_per_tile} per tile"
                    )
                tiles.append(n // self.tokens_per_tile)
        return tiles

    def prepare_prefill(self, call: _hf.CallArgs, captured: Callable[[], dict[str, Any] | None]) -> PrefillInputs:
        input_ids, attention, embeds, encoded, vision = self.prefill_start(
            call,
            captured,
            lambda: self.mm.get_image_features(
                pixel_values=call["pixel_values"],
                vision_feature_layer=call.get("vision_feature_layer"),
                vision_feature_select_strategy=call.get("vision_feature_select_strategy"),
                return_dict=True,
            ),
        )
        (features,) = _hf.pooled_per_image(encoded)  # [tiles, tokens per tile, D]
        image_mask = input_ids == self.mm.config.image_token_id
        tiles = self.tiles_per_image(image_mask)
        counts = {sum(tiles), int(features.shape[0]), int(vision["pixel_values"].shape[0])}
        if features.shape[1] != self.tokens_per_tile or len(counts) != 1:
            raise EraseError("the captured vision input does not match the image tokens of this prompt")
        embeds = scatter_features(embeds, image_mask, features.reshape(-1, features.shape[-1]))

        position_ids = call["position_ids"]
        if position_ids is None:  # what the LLM does without them: 0..L-1
            position_ids = torch.arange(input_ids.shape[1], device=input_ids.device).expand(input_ids.shape[0], -1)
        if position_ids.ndim == 2:
            position_ids = position_ids[None]

        slots = split_slots(image_mask, [n * self.tokens_per_tile for n in tiles])
        vision = {"pixel_values": vision["pixel_values"], "tiles_per_image": tiles}
        _, grids = self.images_from_vision(vision, with_pixels=False)
        return PrefillInputs(embeds, position_ids, attention, slots, vision, grids)

    def images_from_vision(
        self, vision: dict[str, Any], with_pixels: bool = True
    ) -> tuple[list[np.ndarray | None], list[tuple[int, int]]]:
        """Per image: its tiles' pixels stacked top to bottom ((n * S) x S x 3 uint8), and that token grid.

        Without `tiles_per_image` all tiles are taken as one image.
        """
        side = self.tile_px // self.token_px
        images, grids = [], []
        for tiles in self.image_pixels(vision):
            n = int(tiles.shape[0])
            grids.append((n * side, side))
            if with_pixels:
                rgb = tiles_to_uint8(tiles, mean=self.image_mean, std=self.image_std)
                images.append(rgb.reshape(n * self.tile_px, self.tile_px, rgb.shape[-1]))
            else:
                images.append(None)
        return images, grids

    def image_pixels(self, vision: dict[str, Any]) -> list[torch.Tensor]:
        """Each image's tiles (all of them as one image without `tiles_per_image`)."""
        pixel_values = vision["pixel_values"]
        out, start = [], 0
        for n in vision.get("tiles_per_image") or [int(pixel_values.shape[0])]:
            out.append(pixel_values[start : start + n])
            start += n
        return out

    def patch_entropies(self, vision: dict[str, Any], rounding: str) -> list[np.ndarray]:
        """Per image: its tiles converted to gray on their device, stacked, and scored (the RGB never leaves)."""
        out = []
        for tiles in self.image_pixels(vision):
            gray = gray_levels(tiles, mean=self.image_mean, std=self.image_std, rounding=rounding, channel_dim=1)
            out.append(gray_image_entropy(gray.reshape(int(tiles.shape[0]) * self.tile_px, self.tile_px), self.token_px))
        return out

    # ---- the vision encoder's attention (AdaVTP, Polymorphic): the [CLS] token's
    def watch_vision_attention(self, callback: Callable[[torch.Tensor], None]) -> Any:
        """[tiles, patches]: the [CLS] query's attention over each tile's patches, in the ViT layer whose output
        the model takes (`vision_feature_layer`), averaged over heads, without [CLS] itself and renormalised
        (AdaVTP's Eq. 1)."""
        layers = self.mm.vision_tower.encoder.layer
        attn = layers[_hf.vision_feature_layer(self.model.config, len(layers))].attention

        def pre(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]  # the layer's normed input [tiles, 1 + P, D]
            with torch.no_grad():
                t, s, _ = hidden.shape
                q = module.q_norm(module.q_proj(hidden[:, :1])).view(t, 1, module.num_heads, module.head_dim)
                k = module.k_norm(module.k_proj(hidden)).view(t, s, module.num_heads, module.head_dim)
                logits = q.transpose(1, 2).float() @ k.transpose(1, 2).float().transpose(-1, -2) * module.scale
                cls = torch.softmax(logits, dim=-1).mean(dim=1)[:, 0, 1:].double()  # [tiles, P]
            callback(cls / cls.sum(dim=-1, keepdim=True))

        return attn.register_forward_pre_hook(pre, with_kwargs=True)

    def token_attention(self, raw: torch.Tensor, vision: dict[str, Any]) -> list[torch.Tensor]:
        """Mean over the 2x2 patches the pixel shuffle merges into each token; an image's tiles in order."""
        side, f = self.tile_px // self.token_px, self.shuffle
        if raw.dim() != 2 or raw.shape[1] != (side * f) ** 2:
            raise EraseError("the vision encoder's attention does not cover this prompt's tiles")
        tiles = vision.get("tiles_per_image") or [int(raw.shape[0])]
        if sum(tiles) != raw.shape[0]:
            raise EraseError("the vision encoder's attention does not cover this prompt's tiles")
        per_token = raw.reshape(-1, side, f, side, f).mean(dim=(2, 4)).reshape(-1, side * side)
        return [a.reshape(-1) for a in per_token.split(tiles)]

    def image_features(self, inputs: dict[str, Any]) -> list[torch.Tensor]:
        config = self.mm.config
        with torch.no_grad():
            encoded = self.mm.get_image_features(
                pixel_values=inputs["pixel_values"],
                vision_feature_layer=config.vision_feature_layer,
                vision_feature_select_strategy=config.vision_feature_select_strategy,
                return_dict=True,
            )
        (features,) = _hf.pooled_per_image(encoded)
        tiles = self.tiles_per_image(inputs["input_ids"] == config.image_token_id)
        return [f.reshape(-1, f.shape[-1]) for f in features.split(tiles)]

    def prefill_kwargs(self, call: _hf.CallArgs, inputs: PrefillInputs, repack: Repack) -> dict[str, Any]:
        return call.replaced(
            _hf.without_images(call),
            input_ids=None,
            inputs_embeds=repack.seq(inputs.inputs_embeds),
            attention_mask=repack.valid.long(),
            # original ids (gaps where tokens were dropped); an explicit mask keeps the
            # mask builders from reading the gaps as packed sequences
            position_ids=repack.positions(inputs.position_ids)[0],
        )
