"""Pairwise distances between an image's vision tokens, in row blocks.

AdaVTP and Polymorphic both compare every vision token with every other. At
4,096 tokens one N x N float64 matrix is 128 MiB (and 2 GiB at 16K tokens), so
nothing here builds it: the rows are visited in blocks of at most
`BLOCK_BYTES` of float64 values, and each block is reduced (nearest
neighbours, minima, maxima) before the next one is computed. Everything runs
in float64, so rankings do not depend on the features' dtype.

Stage logic only: tensors in, tensors out, no model.
"""

from __future__ import annotations

from typing import Iterator

import torch

BLOCK_BYTES = 32 << 20  # float64 values of one block of rows x columns


def rows_per_block(columns: int, block_bytes: int | None = None) -> int:
    budget = BLOCK_BYTES if block_bytes is None else block_bytes
    return max(1, budget // (8 * max(1, columns)))


def row_blocks(n: int, columns: int, block_bytes: int | None = None) -> Iterator[tuple[int, int]]:
    step = rows_per_block(columns, block_bytes)
    for start in range(0, n, step):
        yield start, min(n, start + step)


def squared_distances(x: torch.Tensor, y: torch.Tensor, x_sq: torch.Tensor, y_sq: torch.Tensor) -> torch.Tensor:
    """||x_i - y_j||^2 for a block of rows x (float64) against y, clamped at 0."""
    return (x_sq[:, None] + y_sq[None, :] - 2.0 * (x @ y.T)).clamp_min_(0.0)


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (float64); an all-zero row stays zero."""
    x = x.double()
    return x / x.norm(dim=1, keepdim=True).clamp_min(torch.finfo(torch.float64).tiny)


def nearest_cosine_distance(x: torch.Tensor, block_bytes: int | None = None) -> torch.Tensor:
    """[N] cosine distance (1 - cosine similarity) from each row to its nearest other row.

    Needs N >= 2.
    """
    u = unit_rows(x)
    n = u.shape[0]
    out = torch.empty(n, dtype=torch.float64, device=u.device)
    for a, b in row_blocks(n, n, block_bytes):
        sim = u[a:b] @ u.T
        sim[torch.arange(b - a, device=u.device), torch.arange(a, b, device=u.device)] = -float("inf")
        out[a:b] = 1.0 - sim.max(dim=1).values
    return out


ATTENTION_BLOCK_BYTES = 8 << 20  # float32 probabilities per block of queries (CPU: stays near the cache)
ATTENTION_BLOCK_BYTES_CUDA = 512 << 20  # on a GPU, few large blocks (16 heads x 65,536 patches: 128 rows)


def received_attention(q: torch.Tensor, k: torch.Tensor, scaling: float, block_bytes: int | None = None) -> torch.Tensor:
    """[n] attention each key receives: softmax(q k^T * scaling) over the keys, averaged over heads and queries.

    q, k: [H, n, d] (one image's span of a full-attention block). Computed in
    float32 blocks of queries (at most `ATTENTION_BLOCK_BYTES` of
    probabilities at a time, `ATTENTION_BLOCK_BYTES_CUDA` on a GPU): exp(logits - row max) in place, then each row's
    share 1 / (row sum) weighs the block's column sums in one product; summed
    in float64. The result sums to 1.
    """
    heads, n, _ = q.shape
    qf, kt = q.float() * scaling, k.float().transpose(-1, -2)
    acc = torch.zeros(n, dtype=torch.float64, device=q.device)
    if block_bytes is None:
        block_bytes = ATTENTION_BLOCK_BYTES_CUDA if q.is_cuda else ATTENTION_BLOCK_BYTES
    step = max(1, block_bytes // (4 * heads * max(1, n)))
    for a in range(0, n, step):
        e = qf[:, a : a + step] @ kt  # [H, c, n] logits
        e -= e.amax(dim=-1, keepdim=True)
        e.exp_()
        share = e.sum(dim=-1).reciprocal_()  # [H, c]
        acc += (share.unsqueeze(1) @ e).sum(dim=(0, 1)).double()
    return acc / (heads * n)
