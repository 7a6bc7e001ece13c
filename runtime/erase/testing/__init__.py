"""The conformance suite every ERASE adapter passes, shipped so adapters outside this repository can run it.

- `erase.testing.oracles`: tiny profiles, deterministic test images and prompts, and the masked
  reference (the unpatched model with the pruned tokens masked out of attention instead of removed).
- `erase.testing.conformance.AdapterConformance`: a base test class; subclass it in a pytest
  module (its name starting with ``Test``), give it a tiny model and processor of your family,
  and pytest collects the whole suite (keep-all equals unpatched, pruned equals masked reference,
  batch equals one by one, decode positions and cache follow the schedule, Stage 1 reads the
  processor's pixels back exactly, text-only passes through, removal restores the model).

Importing `erase.testing.conformance` needs pytest; nothing here is imported by `import erase`.
"""

from __future__ import annotations

from .oracles import (
    image_slots,
    keep_all_profile,
    make_image,
    make_messages,
    masked_reference_logits,
    simple_image,
    tiny_profile,
    vision_output,
)

__all__ = [
    "image_slots",
    "keep_all_profile",
    "make_image",
    "make_messages",
    "masked_reference_logits",
    "simple_image",
    "tiny_profile",
    "vision_output",
]
