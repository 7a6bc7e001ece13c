"""Polymorphic: density-peak merging before the LLM, rater-guided pruning and merging inside it.

From the Polymorphic paper (Sec. 3.2-3.3, Eqs. 1-12), with our choices where it
leaves one open (marked "ours"):

Stage 1, on an image's vision features X [N, C] (what the LLM receives):

- keep `k` tokens in all, k = about twice the final budget (the paper's K = 2);
  `merged_count(k)` of them are cluster centres (ours: round(k / 6.4), the
  paper's reported 5.4:1 ratio of retained to merged tokens), the rest are the
  tokens the vision encoder attends to most (ties to the lower index);
- the other tokens (the "sparse rest") are clustered by density peaks:
  D_ij = ||x_i - x_j|| / sqrt(C) (Eq. 1); rho_i = exp(-mean of D^2 to its K_NN
  nearest neighbours) (Eq. 3, K_NN = 5, ours); delta_i = min D_ij over the
  tokens j with rho_j > rho_i, and max_j D_ij for a token with no denser one
  (the usual density-peak convention; Eq. 5 prints rho_i > rho_i); S = rho x
  delta; the top-c S are the centres (ties to the lower index);
- every rest token joins its nearest centre (Eq. 6; ties to the lower centre
  index) and each cluster becomes the mean of its members (Eq. 7).

Stage 2, at a fixed decoder layer, per image, on the layer's output hidden
states V (the image's tokens) and T (the instruction's text tokens, as ERASE's
Stage 2 uses): M = softmax(V T^T / sqrt(d)) over the text tokens (Eq. 9);
s_j = mean_i M_ij; raters = {j : s_j > mean(s)} (Eq. 10; all text tokens when
none is above the mean); alpha_i = mean of M_ij over the raters (Eq. 11).
The tokens with the highest alpha are kept, which is alpha >= tau with tau
the quantile the pruning rate implies (Eq. 12; ties to the lower index), and
the pruned ones are merged again as in Stage 1 (same clustering, on the
hidden states). Ours: the budget counts merged tokens, so an image ends with
exactly the final budget, merged_count(budget) of them merged.

A merged token sits in the slot of its cluster centre and keeps the centre's
position ids (M-RoPE rows or RoPE id).

All distances are computed in float64, in row blocks (`erase.pairwise`):
never one N x N matrix. Stage logic only: no model here.
"""

from __future__ import annotations

import math
import numpy as np
import torch

from .adavtp import attention_order
from .merging import Merge
from .pairwise import row_blocks, squared_distances

K_NN = 5
STAGE1_FACTOR = 2.0  # Stage 1 keeps about this many times the final budget (the paper's K)
LAYER = 3  # the fixed Stage 2 layer, 0-based (the paper prunes Qwen2-VL first at its layer 3)


def merged_count(k: int) -> int:
    """How many of k output tokens are merged ones: round(k / 6.4), halves up (5.4 kept per merged)."""
    return (5 * k + 16) // 32


def density_peaks(x: torch.Tensor, c: int, k_nn: int = K_NN, block_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centres (sorted indices) of the c highest density-peak scores, and each row's nearest centre.

    Identical rows (an InternVL thumbnail repeating a flat tile, say) are
    computed once, with their multiplicity: they are each other's neighbours
    at distance exactly 0 and get exactly the same rho, delta and score, so
    ties go to the lower index as the equations say, not to rounding.
    """
    x = x.double()
    n, dim = x.shape
    if c >= n:
        idx = np.arange(n, dtype=np.int64)
        return idx, idx.copy()
    uniq, inverse, counts = torch.unique(x, dim=0, return_inverse=True, return_counts=True)
    u = uniq.shape[0]
    sq = (uniq * uniq).sum(dim=1)
    knn = min(k_nn, n - 1)
    rho = torch.ones(u, dtype=torch.float64, device=x.device)
    delta = torch.empty(u, dtype=torch.float64, device=x.device)
    if knn > 0:
        for a, b in row_blocks(u, u, block_bytes):
            rows = torch.arange(b - a, device=x.device)
            d2 = squared_distances(uniq[a:b], uniq, sq[a:b], sq) / dim
            many = counts[a:b] > 1  # a row's own copies are neighbours at distance 0
            d2[rows, rows + a] = torch.where(many, 0.0, float("inf")).to(d2.dtype)
            near = d2.topk(min(knn, u), dim=1, largest=False)
            cnt = counts[near.indices].clone()
            cnt[near.indices == (rows + a)[:, None]] -= 1  # the row itself is not its neighbour
            before = cnt.cumsum(dim=1) - cnt
            take = (knn - before).clamp(min=0).minimum(cnt)
            total = torch.where(take > 0, near.values * take, torch.zeros_like(near.values)).sum(dim=1)
            rho[a:b] = torch.exp(-total / knn)
    for a, b in row_blocks(u, u, block_bytes):
        rows = torch.arange(b - a, device=x.device)
        d = (squared_distances(uniq[a:b], uniq, sq[a:b], sq) / dim).sqrt_()
        d[rows, rows + a] = 0.0
        denser = rho[None, :] > rho[a:b, None]
        nearest_denser = d.masked_fill(~denser, float("inf")).min(dim=1).values
        delta[a:b] = torch.where(denser.any(dim=1), nearest_denser, d.max(dim=1).values)
    score = (rho * delta)[inverse].cpu().numpy()
    centres = np.sort(np.argsort(-score, kind="stable")[:c]).astype(np.int64)
    # nearest centre, against the centres' distinct rows: copies tie exactly and go to the lowest index
    rows_of_centres, first = np.unique(inverse[torch.from_numpy(centres).to(x.device)].cpu().numpy(), return_index=True)
    representative = centres[first]
    cu = torch.from_numpy(rows_of_centres).to(x.device)
    assign = np.empty(n, dtype=np.int64)
    for a, b in row_blocks(u, cu.numel(), block_bytes):
        d2 = squared_distances(uniq[a:b], uniq[cu], sq[a:b], sq[cu])
        d2[cu[None, :] == torch.arange(a, b, device=x.device)[:, None]] = 0.0  # a copy of a centre is at 0
        nearest = d2.argmin(dim=1)
        rows = torch.nonzero((inverse >= a) & (inverse < b)).flatten()
        assign[rows.cpu().numpy()] = representative[nearest[inverse[rows] - a].cpu().numpy()]
    assign[centres] = centres
    return centres, assign


def _split(order: np.ndarray, n: int, k: int, x: torch.Tensor, block_bytes: int | None) -> Merge:
    """Keep the first k - c of `order`, cluster the others into c centres (c = merged_count(k))."""
    if k >= n:
        return Merge.keep_all(n)
    c = merged_count(k)
    retained = order[: k - c]
    rest = np.sort(order[k - c :])
    carrier = np.full(n, -1, dtype=np.int64)
    carrier[retained] = retained
    if c > 0:
        _, assign = density_peaks(x[torch.from_numpy(rest).to(x.device)], c, block_bytes=block_bytes)
        carrier[rest] = rest[assign]
    return Merge(np.unique(carrier[carrier >= 0]), carrier)


def stage1(features: torch.Tensor, attention: torch.Tensor, k: int, block_bytes: int | None = None) -> Merge:
    """Stage 1 for one image: k tokens out of features [N, C], by attention and density-peak merging."""
    n = int(features.shape[0])
    return _split(attention_order(attention), n, k, features, block_bytes)


def importance(vision: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """alpha (Eq. 11) of each vision token [Nv, d] from the text tokens [Nt, d], float64."""
    v, t = vision.double(), text.double()
    m = torch.softmax(v @ t.T / math.sqrt(v.shape[1]), dim=1)  # Eq. 9: over the text tokens
    s = m.mean(dim=0)  # Eq. 10
    raters = s > s.mean()
    if not bool(raters.any()):
        raters = torch.ones_like(raters)
    return m[:, raters].mean(dim=1)


def stage2(vision: torch.Tensor, text: torch.Tensor, k: int, block_bytes: int | None = None) -> Merge:
    """Stage 2 for one image: k tokens out of its hidden states [M, d], by rater alignment and merging."""
    n = int(vision.shape[0])
    if k >= n:
        return Merge.keep_all(n)
    alpha = importance(vision, text).cpu().numpy()
    return _split(np.argsort(-alpha, kind="stable"), n, k, vision, block_bytes)
