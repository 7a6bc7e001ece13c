"""AdaVTP: attention-ranked greedy selection with an adaptive cosine-distance threshold.

From the AdaVTP paper (Sec. 4.3, Eq. 6; erank Eq. 3 and App. Eq. 7):

1. rank an image's vision tokens by the attention they receive in the vision
   encoder (descending; ties go to the lower token index);
2. take the highest-ranked token still a candidate, keep it, and drop every
   other candidate whose cosine distance to it is smaller than
   tau_i = min(tau_max, order_i * (erank_input / erank_avg * 0.01));
3. repeat until the budget is met.

- order_i is the kept token's 1-based rank in the attention order (the
  paper: "the rank of the token").
- erank_input is the effective rank of the image's token features: exp of the
  entropy of their normalised singular values (Roy & Vetterli). erank_avg and
  tau_max are statistics of a reference set, stored in the profile
  (`methods.adavtp`): erank_avg is the mean erank over the reference images;
  tau_max is the 95th percentile of every reference token's cosine distance to
  its nearest other token of the same image (`TAU_MAX_RULE`). The paper
  names no rule for tau_max ("a statistical upper bound"); ours caps the
  threshold at the distance within which almost every token has a neighbour,
  so one kept token never sweeps away more than its near-duplicates.
- When the candidates run out before the budget is met, the remaining places
  go to the dropped tokens in attention order.

Features are what the LLM receives for the image (the merger's / projector's
output), in float64. Stage logic only: no model here.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from .pairwise import nearest_cosine_distance, unit_rows
from .profile import ADAVTP_TAU_MAX_RULES, AdaVTPReference

ERANK_SCALE = 0.01  # Eq. 6
TAU_MAX_QUANTILE = 0.95
TAU_MAX_RULE = ADAVTP_TAU_MAX_RULES[0]  # "p95_nearest_cosine", recorded in the profile next to the value


def erank(features: torch.Tensor) -> float:
    """Effective rank of an [N, C] matrix: exp(-sum q log q), q = singular values / their sum.

    The singular values come from the eigenvalues of the smaller Gram matrix
    (C x C when N > C, else N x N), in float64.
    """
    x = features.double()
    gram = x.T @ x if x.shape[0] > x.shape[1] else x @ x.T
    sigma = torch.linalg.eigvalsh(gram).clamp_min(0.0).sqrt()
    sigma = sigma[sigma > 0]
    if sigma.numel() == 0:
        return 1.0
    q = sigma / sigma.sum()
    return float(torch.exp(-(q * q.log()).sum()))


def reference_statistics(features: Iterable[torch.Tensor]) -> AdaVTPReference:
    """erank_avg and tau_max (`TAU_MAX_RULE`) over reference images, one [N, C] feature matrix each."""
    eranks: list[float] = []
    nearest: list[np.ndarray] = []
    for f in features:
        if f.shape[0] == 0:
            continue
        eranks.append(erank(f))
        if f.shape[0] > 1:
            nearest.append(nearest_cosine_distance(f).cpu().numpy())
    if not eranks or not nearest:
        raise ValueError("AdaVTP's reference statistics need at least one image with two or more vision tokens")
    tau_max = float(np.quantile(np.concatenate(nearest), TAU_MAX_QUANTILE))
    return AdaVTPReference(erank_avg=float(np.mean(eranks)), tau_max=tau_max, images=len(eranks), tau_max_rule=TAU_MAX_RULE)


def attention_order(attention: torch.Tensor | np.ndarray) -> np.ndarray:
    """Token indices by descending attention; ties go to the lower index."""
    a = np.asarray(attention.detach().double().cpu() if isinstance(attention, torch.Tensor) else attention, dtype=np.float64)
    return np.argsort(-a, kind="stable")


CHUNK = 64  # candidates whose distance rows are computed in one product


def select(features: torch.Tensor, attention: torch.Tensor, k: int, erank_avg: float, tau_max: float) -> np.ndarray:
    """The k kept tokens of one image (sorted row-major indices).

    Cosine distances are computed for the next `CHUNK` candidates in rank order
    at once (one matrix product, float64, on the features' device); a
    candidate dropped by an earlier one of its chunk is skipped, as in the
    one-at-a-time procedure. At most CHUNK x N distances exist at a time.
    """
    n = int(features.shape[0])
    k = min(k, n)
    order = attention_order(attention)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    scale = erank(features) / erank_avg * ERANK_SCALE
    unit = unit_rows(features)
    alive = np.ones(n, dtype=bool)
    kept: list[int] = []
    queue, pos = order.tolist(), 0
    while pos < n and len(kept) < k:
        chunk: list[int] = []
        while pos < n and len(chunk) < CHUNK:
            if alive[queue[pos]]:
                chunk.append(queue[pos])
            pos += 1
        if not chunk:
            break
        rows = (1.0 - unit[torch.tensor(chunk, device=unit.device)] @ unit.T).cpu().numpy()  # [chunk, N]
        for i, t in enumerate(chunk):
            if not alive[t]:
                continue  # dropped by an earlier token of this chunk
            kept.append(t)
            if len(kept) == k:
                break
            alive[t] = False
            tau = min(tau_max, rank[t] * scale)
            alive &= rows[i] >= tau  # drop the candidates closer than tau
    if len(kept) < k:  # candidates ran out: the dropped tokens, in attention order
        taken = np.zeros(n, dtype=bool)
        taken[kept] = True
        kept.extend(t for t in queue if not taken[t])
        kept = kept[:k]
    return np.sort(np.asarray(kept, dtype=np.int64))
