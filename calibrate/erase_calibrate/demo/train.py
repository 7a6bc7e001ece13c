"""Train the demo model from scratch on the synthetic tasks (CPU, deterministic).

    python -m erase_calibrate.demo.train --out data_samples/demo-model --seed 0 --steps 600

Recipe: the real `Qwen2_5_VLForConditionalGeneration` with the tiny config of
`erase_calibrate.demo.model`, freshly initialised; items from the ``train``
split of `erase_calibrate.demo.tasks`, formatted with the processor's chat
template exactly as they are asked at inference (image, then the prompt, then
the generation prompt); cross-entropy on the answer tokens and the closing
``<|im_end|>`` only (labels -100 elsewhere); AdamW with linear warm-up and a
cosine decay. A curriculum starts on simple backgrounds only and mixes in the
complex ones after ``--simple-steps``.

Deterministic given the seed and the thread count: items depend only on
(seed, index); torch is seeded, runs deterministic algorithms and a fixed
number of threads; a single background process renders the batches ahead in
order. Progress (loss, learning rate, speed, held-out accuracy) goes to stdout;
the checkpoint (float16 safetensors, config, tokenizer, processor config,
chat template) and ``training.json`` (arguments, time, hardware, curve) go to
``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
import types
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from ..models.processor import build_processor
from ..tasks import encode_batch
from ..tasks.sources import demo as tasks

from ..models.demo import DEMO_SPEC, MAX_PIXELS, MODEL_ID, DemoSpec, build_demo_processor, new_demo_model, spec_dict

SAVE_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def parse_curriculum(spec: str, steps: int) -> list[tuple[int, int]]:
    """``"4:150,8:150,16"`` -> [(4, 150), (8, 150), (16, steps - 300)]: picture side in tokens
    and number of steps, in order; the last stage takes the remaining steps."""
    stages: list[tuple[int, int]] = []
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    for i, part in enumerate(parts):
        grid, _, n = part.partition(":")
        if i == len(parts) - 1:
            n_steps = steps - sum(k for _, k in stages) if not n else int(n)
        else:
            n_steps = int(n)
        stages.append((int(grid), n_steps))
    if sum(k for _, k in stages) != steps or any(k <= 0 for _, k in stages):
        raise ValueError(f"curriculum {spec!r} does not fill {steps} steps")
    return stages


def grid_at(stages: list[tuple[int, int]], step: int) -> int:
    for grid, n in stages:
        if step < n:
            return grid
        step -= n
    return stages[-1][0]


class _TrainBatches(torch.utils.data.Dataset):
    """Batch `step` of the training stream: items step*B .. step*B + B - 1 of the train split.

    Curriculum: pictures grow from a few tokens a side to the full 16 (`stages`); small
    pictures make the one informative token easy to find and cost a fraction of a full
    one. The first `simple_steps` steps use simple backgrounds only.
    """

    def __init__(self, processor: Any, seed: int, batch: int, stages: list[tuple[int, int]], simple_steps: int):
        self.processor, self.seed, self.batch, self.stages = processor, seed, batch, stages
        self.steps = sum(n for _, n in stages)
        self.simple_steps = simple_steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int) -> dict[str, torch.Tensor]:
        items = []
        for j in range(self.batch):
            index = step * self.batch + j
            background = None
            if step < self.simple_steps:  # curriculum: simple backgrounds first
                background = tasks.SIMPLE_BACKGROUNDS[(index // len(tasks.TASKS)) % len(tasks.SIMPLE_BACKGROUNDS)]
            grid = grid_at(self.stages, step)
            items.append(tasks.make_item(index, seed=self.seed, split="train", background=background, grid=grid))
        batch = encode_batch(self.processor, items, with_answers=True)
        batch["token_targets"] = token_targets(items)
        return batch


# ----------------------------------------------------------------------------- auxiliary targets
def token_classes() -> tuple[str, ...]:
    """What a vision token can show: nothing, or one object part of the generator."""
    words = [f"word:{w}:{k}" for w in tasks.WORDS for k in (0, 1)]
    return (
        ("background",)
        + tuple(f"letter:{c}" for c in tasks.LETTERS)
        + tuple(f"digit:{c}" for c in tasks.DIGITS)
        + tuple(words)
        + tuple(f"shape:{c}:{k}" for c in tasks.COLORS for k in tasks.SHAPES)
    )


_CLASS = {name: i for i, name in enumerate(token_classes())}


def token_targets(items: Sequence[tasks.Item]) -> torch.Tensor:
    """Per vision token (all images, row-major), the class of what it shows (0: background)."""
    out = []
    for item in items:
        side = int(round(item.image.size[0] / tasks.TOKEN_PX))
        t = torch.zeros(side * side, dtype=torch.long)
        for token, label in zip(item.metadata["answer_tokens"], item.metadata["token_labels"]):
            t[token] = _CLASS[label]
        out.append(t)
    return torch.cat(out)


class TokenProbe(torch.nn.Module):
    """Training-only linear head on the merged vision features: dense supervision that teaches
    the small vision tower what each token shows, long before the answer loss alone would.
    It is dropped after training; the shipped model is the plain Qwen2.5-VL."""

    def __init__(self, model: Any):
        super().__init__()
        self.head = torch.nn.Linear(model.config.vision_config.out_hidden_size, len(_CLASS))
        self.features: torch.Tensor | None = None
        self._hook = model.model.visual.register_forward_hook(self._keep)

    def _keep(self, module, args, output) -> None:
        self.features = output.pooler_output

    def loss(self, targets: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.features)
        per_token = F.cross_entropy(logits, targets, reduction="none")
        obj = targets > 0
        # objects are a few tokens in 256: weigh them as much as all the background together
        return per_token[obj].mean() + per_token[~obj].mean()

    def remove(self) -> None:
        self._hook.remove()


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


# ----------------------------------------------------------------------------- speed
@contextlib.contextmanager
def linear_patch_embed(model: Any):
    """Run the ViT patch embedding (a Conv3d whose kernel equals its stride and its input)
    as the equivalent matrix product: the same function, several times faster on CPU."""
    pe = model.model.visual.patch_embed

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        w = self.proj.weight.reshape(self.proj.weight.shape[0], -1)
        return F.linear(hidden_states.to(w.dtype), w, self.proj.bias)

    pe.forward = types.MethodType(forward, pe)
    try:
        yield model
    finally:
        del pe.forward


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def teacher_forced_accuracy(model: Any, processor: Any, items: Sequence[tasks.Item], batch: int = 24) -> dict[str, float]:
    """Share of items whose every answer token (and ``<|im_end|>``) is the argmax: exactly the
    items greedy decoding answers with the reference. Per task and overall."""
    was_training = model.training
    model.eval()
    hits: dict[str, list[int]] = {}
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        enc = encode_batch(processor, chunk, with_answers=True)
        labels = enc.pop("labels")
        logits = model(**enc, use_cache=False).logits
        pred = logits[:, :-1].argmax(-1)
        gold = labels[:, 1:]
        ok = ((pred == gold) | (gold == -100)).all(dim=1)
        for item, good in zip(chunk, ok.tolist()):
            hits.setdefault(item.metadata["task"], []).append(int(good))
    if was_training:
        model.train()
    out = {task: sum(v) / len(v) for task, v in sorted(hits.items())}
    flat = [x for v in hits.values() for x in v]
    out["all"] = sum(flat) / len(flat)
    return out


# ----------------------------------------------------------------------------- training
def lr_at(step: int, steps: int, peak: float, warmup: int, floor: float = 0.05) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _children_cpu() -> float:
    try:
        import resource

        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        return r.ru_utime + r.ru_stime
    except (ImportError, OSError):  # pragma: no cover - not POSIX
        return 0.0


def hardware() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": False,
    }


def train(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    processor = build_demo_processor()
    # Training reads pictures at their own size (small ones stay small); the shipped
    # processor fixes the budget at 256 tokens.
    stages = parse_curriculum(args.curriculum, args.steps)
    train_processor = build_processor(
        processor.tokenizer, min_pixels=min(g for g, _ in stages) ** 2 * tasks.TOKEN_PX**2, max_pixels=MAX_PIXELS
    )
    spec = DemoSpec(**{**spec_dict(DEMO_SPEC), **(args.spec or {})})
    model = new_demo_model(processor.tokenizer, spec, seed=args.seed)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    probe = TokenProbe(model) if args.aux_weight > 0 else None
    named = list(model.named_parameters()) + (list(probe.named_parameters()) if probe else [])
    decay = [p for n, p in named if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in named if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        betas=(0.9, 0.98),
        eps=1e-8,
    )
    eval_sets = {g: tasks.generate_items(args.eval_items, seed=args.seed, split="test", grid=g) for g, _ in stages}
    data = _TrainBatches(train_processor, args.seed, args.batch, stages, args.simple_steps)
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=None,
        shuffle=False,
        num_workers=args.workers,
        worker_init_fn=_worker_init if args.workers else None,
        prefetch_factor=4 if args.workers else None,
        persistent_workers=False,
    )
    print(
        f"demo train: {n_params / 1e6:.2f} M parameters, {args.steps} steps x batch {args.batch}, "
        f"lr {args.lr}, seed {args.seed}, {args.threads} threads, curriculum {stages}",
        flush=True,
    )
    curve: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    ema = None
    with linear_patch_embed(model):
        for step, batch in enumerate(loader):
            lr = lr_at(step, args.steps, args.lr, args.warmup)
            for group in opt.param_groups:
                group["lr"] = lr
            targets = batch.pop("token_targets")
            loss = model(**batch, use_cache=False).loss
            aux = probe.loss(targets) if probe is not None else None
            total = loss + args.aux_weight * aux if aux is not None else loss
            total.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_([p for _, p in named], args.clip))
            opt.step()
            opt.zero_grad(set_to_none=True)
            value = loss.item()
            ema = value if ema is None else 0.9 * ema + 0.1 * value
            done = step + 1
            if done % args.log_every == 0 or done == args.steps:
                elapsed = time.perf_counter() - t0
                per = elapsed / done
                bar = "#" * int(30 * done / args.steps)
                print(
                    f"[{bar:<30}] step {done}/{args.steps} loss {value:.4f} (ema {ema:.4f}) lr {lr:.2e} "
                    f"{f'aux {aux.item():.3f} ' if aux is not None else ''}|g| {grad_norm:.2f} {per:.2f} s/step, {elapsed / 60:.1f} min, eta {(args.steps - done) * per / 60:.1f} min",
                    flush=True,
                )
                curve.append({"step": done, "loss": round(value, 5), "ema": round(ema, 5), "lr": lr, "s": round(elapsed, 1)})
            if args.eval_every and (done % args.eval_every == 0 or done == args.steps):
                grid = grid_at(stages, step)
                acc = teacher_forced_accuracy(model, train_processor if grid != tasks.GRID else processor, eval_sets[grid])
                evals.append({"step": done, "grid": grid, **{k: round(v, 4) for k, v in acc.items()}})
                print(
                    f"  eval @ {done} (held-out, {grid}x{grid} tokens): "
                    + ", ".join(f"{k} {v:.2f}" for k, v in acc.items()),
                    flush=True,
                )
    if probe is not None:
        probe.remove()
    train_s = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0 + _children_cpu()
    model.eval()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_dtype = SAVE_DTYPES[args.save_dtype]
    model.to(save_dtype).save_pretrained(str(out))
    processor.save_pretrained(str(out))
    model.to(torch.float32)
    record = {
        "model_id": MODEL_ID,
        "command": "python -m erase_calibrate.demo.train " + " ".join(sys.argv[1:]),
        "date": _dt.date.today().isoformat(),
        "args": {k: v for k, v in vars(args).items()},
        "spec": spec_dict(spec),
        "parameters": n_params,
        "train_seconds": round(train_s, 1),
        "train_cpu_seconds": round(cpu_s, 1),
        "hardware": hardware(),
        "curve": curve,
        "evals": evals,
        "saved_dtype": args.save_dtype,
    }
    (out / "training.json").write_text(json.dumps(record, indent=2) + "\n")
    print(
        f"saved {out} ({n_params / 1e6:.2f} M parameters, {args.save_dtype}); trained in {train_s / 60:.1f} min "
        f"wall clock, {cpu_s / 60:.1f} min CPU time",
        flush=True,
    )
    return record


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m erase_calibrate.demo.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="checkpoint directory to write (e.g. data_samples/demo-model)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--warmup", type=int, default=30)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--aux-weight", type=float, default=1.0, help="weight of the per-token auxiliary loss (0: answers only)")
    p.add_argument("--simple-steps", type=int, default=0, help="first steps on simple backgrounds only (curriculum)")
    p.add_argument(
        "--curriculum",
        default="16",
        help="picture side in tokens and steps per stage, e.g. 4:150,8:150,16 (the last stage takes the rest)",
    )
    p.add_argument("--threads", type=int, default=2, help="torch threads (fixed for determinism)")
    p.add_argument("--workers", type=int, default=1, help="processes rendering batches ahead (0: in the main process)")
    p.add_argument("--eval-every", type=int, default=100, help="held-out accuracy every N steps (0: only never)")
    p.add_argument("--eval-items", type=int, default=72)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--save-dtype", choices=sorted(SAVE_DTYPES), default="float16")
    p.add_argument("--spec", type=json.loads, default=None, help='JSON overrides of the model shape, e.g. \'{"layers": 4}\'')
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    train(parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
