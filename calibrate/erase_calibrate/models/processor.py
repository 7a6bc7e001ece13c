"""Offline Qwen-style tokenizer and image-only processor, built from code.

Real checkpoints ship their own tokenizer and processor; benchmarks on random-weight
architecture presets and the tests need ones that build without a model hub
(``HF_HUB_OFFLINE=1``) and without torchvision:

- ``build_tokenizer()``: a deterministic byte-level BPE trained on a small built-in corpus,
  with the Qwen special tokens and the Qwen2.5-VL chat template;
- ``ImageTextProcessor``: an image-only ``ProcessorMixin`` (image processor + tokenizer + chat
  template). The stock ``Qwen2_5_VLProcessor`` needs a video processor, which needs
  torchvision. It returns ``input_ids``, ``attention_mask``, ``pixel_values``,
  ``image_grid_thw`` and ``mm_token_type_ids`` like the real processor;
- ``build_image_processor(min_pixels, max_pixels)`` / ``build_processor(...)``.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedTokenizerFast, ProcessorMixin, Qwen2VLImageProcessorPil

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "ImageTextProcessor",
    "build_image_processor",
    "build_processor",
    "build_tokenizer",
    "special_token_ids",
]

SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)

# The Qwen2.5-VL-Instruct chat template (as shipped with the real checkpoints).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_BPE_VOCAB_SIZE = 512  # trained vocabulary (256 byte symbols + merges), before special tokens

_CORPUS = (
    "You are a helpful assistant.",
    "Describe the image in detail.",
    "What is shown in this picture? Answer with a single word or phrase.",
    "What is the text written on the sign?",
    "How many people are in the photo? Please count them carefully.",
    "Compare the two images and list the differences.",
    "Read the chart and tell me which year had the highest value.",
    "The image shows an astronaut in a white suit standing next to a flag.",
    "A small red car is parked on the street in front of a blue house.",
    "The document contains a table with three columns and ten rows.",
    "There is a cat sitting on the table and a dog sleeping on the floor.",
    "The answer is yes. The answer is no. The answer is two.",
    "Question: what color is the sky? Answer: the sky is blue.",
    "Question: what is the title of the page? Answer: the title is at the top.",
    "The quick brown fox jumps over the lazy dog.",
    "In the left part of the picture there is a tree, and on the right a river.",
    "The total amount on the receipt is 42 dollars and 17 cents.",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 20 30 100 2024 2025.",
    "The graph rises from January to June and falls after that.",
    "Please provide a short caption for the image.",
    "The woman is holding an umbrella because it is raining.",
    "A man rides a bicycle across the bridge while the sun sets.",
    "The screen displays a map with several roads and a lake.",
    "This is a photo of a kitchen with a white table and four chairs.",
    "The label on the bottle says water, and the price is one euro.",
    "Look at the image carefully and then answer the question below.",
    "It is a diagram of a cell with a nucleus and a membrane.",
    "The first image is brighter than the second image.",
    "Which option is correct? A. red B. green C. blue D. yellow.",
    "The train arrives at the station at seven in the morning.",
)


def build_tokenizer(padding_side: str = "left") -> PreTrainedTokenizerFast:
    """A deterministic byte-level BPE tokenizer with the Qwen special tokens.

    The trained vocabulary comes first (ids 0..n-1); the seven special tokens are appended
    after it, like in the real Qwen tokenizer. ``pad`` is ``<|endoftext|>``, ``eos`` is
    ``<|im_end|>`` (the instruct models stop there) and there is no BOS token.
    ``padding_side`` defaults to ``"left"`` so batches are ready for ``generate``.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_BPE_VOCAB_SIZE,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(_CORPUS) * 2, trainer=trainer)
    tok.add_special_tokens(list(SPECIAL_TOKENS))

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        padding_side=padding_side,
        model_max_length=32768,
        chat_template=CHAT_TEMPLATE,
    )
    return tokenizer


class ImageTextProcessor(ProcessorMixin):
    """Image-only Qwen2.5-VL processor: image processor + tokenizer + chat template.

    Mirrors ``Qwen2_5_VLProcessor`` for images: each ``<|image_pad|>`` in the text is expanded to
    ``grid_t * grid_h * grid_w // merge_size**2`` pad tokens, and ``mm_token_type_ids`` (0 text,
    1 image) is returned because ``Qwen2_5_VLModel.get_rope_index`` needs it.
    """

    return_mm_token_type_ids = True

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        super().__init__(image_processor, tokenizer, chat_template=chat_template, **kwargs)

    def replace_image_token(self, image_inputs: dict, image_idx: int, **kwargs: Any) -> str:
        merge_length = self.image_processor.merge_size**2
        num_image_tokens = int(image_inputs["image_grid_thw"][image_idx].prod()) // merge_length
        return self.image_token * num_image_tokens

    @property
    def model_input_names(self) -> list[str]:
        return list(dict.fromkeys(super().model_input_names + ["mm_token_type_ids"]))

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = super().__call__(*args, **kwargs)
        # transformers before 5.20 does not add the types for ProcessorMixin subclasses itself
        if "input_ids" in out and "mm_token_type_ids" not in out:
            ids = out["input_ids"]
            if isinstance(ids, torch.Tensor):
                out["mm_token_type_ids"] = (ids == self.image_token_id).to(ids.dtype)
            else:
                out["mm_token_type_ids"] = [[int(t == self.image_token_id) for t in row] for row in ids]
        return out


def special_token_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    """Id of every Qwen special token in ``tokenizer``."""
    return {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}


def build_image_processor(min_pixels: int, max_pixels: int, **kwargs: Any) -> Qwen2VLImageProcessorPil:
    """Qwen2-VL PIL image processor (patch 14, temporal patch 2, merge 2) with the given pixel bounds."""
    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels, **kwargs)


def build_processor(
    tokenizer: PreTrainedTokenizerFast | None = None,
    *,
    image_processor: Qwen2VLImageProcessorPil | None = None,
    min_pixels: int = 4 * 28 * 28,
    max_pixels: int = 16384 * 28 * 28,
    chat_template: str | None = None,
) -> ImageTextProcessor:
    """An image-only processor; the tokenizer's own chat template wins over the built-in one."""
    tokenizer = tokenizer if tokenizer is not None else build_tokenizer()
    if image_processor is None:
        image_processor = build_image_processor(min_pixels, max_pixels)
    template = chat_template or getattr(tokenizer, "chat_template", None) or CHAT_TEMPLATE
    return ImageTextProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
