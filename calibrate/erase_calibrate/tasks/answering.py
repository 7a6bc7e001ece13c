"""Asking a model about items, the one way every command does it: chat-formatted inputs
(`encode`, `encode_batch`), answers read back (`decode`), greedy answers and teacher-forced
checks, one item or a batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch


@dataclass(frozen=True)
class Answer:
    text: str
    token_ids: tuple[int, ...]  # generated ids, including the end-of-turn token when it stopped there


def messages(prompt: str) -> list[dict[str, Any]]:
    """One user turn: the image, then the prompt."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]


def prompt_text(processor: Any, item: Any) -> str:
    """The chat template's text for ITEM, up to where the assistant answers (the template's defaults)."""
    return processor.apply_chat_template(messages(item.prompt), add_generation_prompt=True, tokenize=False)


def encode(processor: Any, item: Any, device: Any = "cpu") -> dict[str, torch.Tensor]:
    """Processor outputs for one item, on `device`."""
    out = processor(text=[prompt_text(processor, item)], images=[item.image], return_tensors="pt")
    return {k: v.to(device) for k, v in out.items()}


item_inputs = encode  # the name the calibrator has used


def encode_batch(processor: Any, items: Sequence[Any], *, with_answers: bool = False) -> dict[str, torch.Tensor]:
    """Processor outputs for a batch (padded as the tokenizer pads); with answers: the first reference
    and ``<|im_end|>`` appended, and ``labels`` that are -100 except on those tokens (training)."""
    tok = processor.tokenizer
    texts, answers = [], []
    for item in items:
        text = prompt_text(processor, item)
        if with_answers:
            ids = tok(item.answer, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
            answers.append(ids)
            text = text + item.answer + "<|im_end|>"
        texts.append(text)
    enc = dict(processor(text=texts, images=[item.image for item in items], return_tensors="pt", padding=True))
    if with_answers:
        if tok.padding_side != "left":
            raise ValueError("encode_batch() expects a left-padding tokenizer")
        labels = torch.full_like(enc["input_ids"], -100)
        for b, ids in enumerate(answers):
            tail = enc["input_ids"][b, -len(ids) :].tolist()
            if tail != ids:  # the answer must tokenise the same inside the prompt as alone
                raise ValueError(f"answer {items[b].answer!r} tokenises differently in context: {tail} vs {ids}")
            labels[b, -len(ids) :] = torch.tensor(ids)
        enc["labels"] = labels
    return enc


def greedy_answer(model: Any, processor: Any, inputs: dict[str, torch.Tensor], max_new_tokens: int) -> Answer:
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return decode(model, processor, out[0, inputs["input_ids"].shape[1] :].tolist())


def decode(model: Any, processor: Any, ids: Sequence[int]) -> Answer:
    """Generated ids up to and including the first end-of-turn token, padding dropped."""
    pad = processor.tokenizer.pad_token_id
    eos = _eos_ids(model)
    trimmed = []
    for t in ids:
        trimmed.append(t)
        if t in eos:
            break
    trimmed = [t for t in trimmed if t != pad or t in eos]
    text = processor.tokenizer.decode(trimmed, skip_special_tokens=True).strip()
    return Answer(text=text, token_ids=tuple(trimmed))


def _eos_ids(model: Any) -> set[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        return set()
    return set(eos) if isinstance(eos, (list, tuple)) else {int(eos)}


# ----------------------------------------------------------------------------- batches
# Per-token tensors of a prompt: left-padded to the longest prompt of a batch. Everything else
# (pixel_values, image_grid_thw, ...) is stacked along its first dimension, images in batch order.
SEQUENCE_KEYS = {"input_ids": None, "attention_mask": 0, "mm_token_type_ids": 0, "token_type_ids": 0}


def collate(inputs: Sequence[dict[str, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """One left-padded batch from per-item processor outputs (a single item comes back unchanged)."""
    if len(inputs) == 1:
        return dict(inputs[0])
    width = max(int(x["input_ids"].shape[1]) for x in inputs)
    out: dict[str, torch.Tensor] = {}
    for key in inputs[0]:
        parts = [x[key] for x in inputs]
        if key in SEQUENCE_KEYS:
            fill = pad_id if SEQUENCE_KEYS[key] is None else SEQUENCE_KEYS[key]
            rows = []
            for p in parts:
                pad = width - int(p.shape[1])
                rows.append(torch.cat([p.new_full((p.shape[0], pad), fill), p], dim=1) if pad else p)
            out[key] = torch.cat(rows, dim=0)
        else:
            out[key] = torch.cat(parts, dim=0)
    return out


def with_answer(inputs: dict[str, torch.Tensor], answer_ids: Sequence[int]) -> dict[str, torch.Tensor]:
    """A prompt's inputs with the answer's tokens appended (for a teacher-forced forward)."""
    ans = torch.tensor([list(answer_ids)], dtype=inputs["input_ids"].dtype, device=inputs["input_ids"].device)
    full = dict(inputs)
    full["input_ids"] = torch.cat([inputs["input_ids"], ans], dim=1)
    full["attention_mask"] = torch.cat([inputs["attention_mask"], torch.ones_like(ans)], dim=1)
    for key in ("mm_token_type_ids", "token_type_ids"):
        if key in inputs:
            full[key] = torch.cat([inputs[key], torch.zeros_like(ans)], dim=1)
    return full


def reproduce_batch(
    model: Any, inputs: Sequence[dict[str, torch.Tensor]], answers: Sequence[Sequence[int]], pad_id: int
) -> list[bool]:
    """Per item, whether greedy decoding would emit exactly its answer: one teacher-forced forward
    over the left-padded batch of prompt + answer (but its last token, which predicts nothing checked)."""
    out = [False] * len(inputs)
    live = [i for i, a in enumerate(answers) if len(a)]
    if not live:
        return out
    longest = max(len(answers[i]) for i in live)
    batch = collate([with_answer(inputs[i], list(answers[i])[:-1]) for i in live], pad_id)
    with torch.no_grad():
        logits = model(**batch, use_cache=False, logits_to_keep=longest).logits
    predicted = logits.argmax(-1)  # position p predicts the token after it; row i's last n_i predict its answer
    for row, i in enumerate(live):
        n = len(answers[i])
        want = torch.tensor(list(answers[i]), device=predicted.device)
        out[i] = bool(torch.equal(predicted[row, longest - n :], want))
    return out


def greedy_answers(
    model: Any, processor: Any, inputs: Sequence[dict[str, torch.Tensor]], max_new_tokens: int
) -> list[Answer]:
    """Greedy answers of a left-padded batch (one `generate()` call)."""
    pad = processor.tokenizer.pad_token_id
    batch = collate(inputs, pad)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    start = batch["input_ids"].shape[1]
    return [decode(model, processor, out[row, start:].tolist()) for row in range(len(inputs))]
