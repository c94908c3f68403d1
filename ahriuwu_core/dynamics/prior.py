"""The action-conditioned linear prior: a next-frame guess that the world model corrects.

For frame t it maps the previous clean frame's latent grid through a k x k linear filter over all channels,
chosen by frame t's action (the one that led into it):

    prior(t) = clean(t-1) + conv_k(clean(t-1); W(a_t)) + b(a_t),   W(a) = W_base + sum_c W_c[a_c]

An unlabelled frame gets W_base alone (the no-action filter). Everything starts at zero, so the prior starts as
plain persistence. In most games the camera motion follows from the action. Measured on the demo, the
least-squares filter rolled out alone beats copying the last frame by 4.0-4.5 dB at h=4..16 (bench/RESULTS.md).
A bilinear shift by a learnt (dx, dy) was tried first: from the x-prediction loss its gradient mostly asked for
blur. The filter is linear in its weights, so its own squared error (`prior_error`) fits it directly.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def neighbourhoods(grid: torch.Tensor, kernel: int) -> torch.Tensor:
    """(M, D, g, g) -> (M, g*g, D*k*k + 1): each cell's k x k neighbourhood over all channels, and a 1 (the bias).
    Replicate padding: content entering the view is most like the edge it enters by."""
    cols = F.unfold(F.pad(grid, (kernel // 2,) * 4, mode="replicate"), kernel).transpose(1, 2)
    return torch.cat([cols, torch.ones_like(cols[..., :1])], -1)


class ActionKernelPrior(nn.Module):
    def __init__(self, num_tokens: int, token_dim: int, action_num_classes: tuple, kernel: int):
        super().__init__()
        side = math.isqrt(num_tokens)
        if side * side != num_tokens:
            raise ValueError(f"ActionKernelPrior: {num_tokens} latent tokens do not form a square grid")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"ActionKernelPrior: kernel={kernel} must be odd and positive")
        self.side, self.kernel = side, kernel
        width = token_dim * kernel * kernel + 1  # the k x k neighbourhood of every channel, and a bias
        self.prior_base = nn.Parameter(torch.zeros(token_dim, width))
        self.prior_action = nn.ParameterList(nn.Parameter(torch.zeros(c, token_dim, width)) for c in action_num_classes)

    def filters(self, actions, has_actions, frames: int) -> torch.Tensor:
        """(M, D, width) per frame: the base filter plus each action component's."""
        w = self.prior_base.expand(frames, -1, -1)
        if actions is None or has_actions is None:
            return w
        a = actions.reshape(frames, -1).long()
        has = has_actions.reshape(frames).long()
        for c, table in enumerate(self.prior_action):
            w = w + table[a[:, c] * has] * has.view(frames, 1, 1).to(w.dtype)
        return w

    def forward(self, previous, actions=None, has_actions=None) -> torch.Tensor:
        """previous (B,T,N,D) standardized clean frames; actions (B,T,C); has_actions (B,T) -> prior (B,T,N,D)."""
        B, T, N, D = previous.shape
        g = self.side
        cols = neighbourhoods(previous.reshape(B * T, g, g, D).permute(0, 3, 1, 2).float(), self.kernel)
        w = self.filters(actions, has_actions, B * T)
        change = torch.bmm(cols, w.transpose(1, 2))  # (M, N, D)
        return (previous.float() + change.view(B, T, N, D)).to(previous.dtype)


def prior_error(prior: torch.Tensor, clean: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum over valid frames (B,T bool) of the prior's mean squared error to the clean frame, and their count."""
    err = (prior.float() - clean.float()).pow(2).mean((-1, -2))
    return (err * valid).sum(), valid.sum().float()


@torch.no_grad()
def fit_least_squares(
    prior: ActionKernelPrior, frames: torch.Tensor, actions=None, has_actions=None, ridge: float = 1e-3
) -> float:
    """Set every filter to the exact ridge least-squares fit of clean(t) - clean(t-1) on frames (B,T,N,D)
    (standardized clean windows, t >= 1) with their actions (B,T,C) / has_actions (B,T). The prior is linear in
    its weights, so this is the optimum its own squared error descends to, reached before training starts.
    The filters are additive (base + one per action component), so a frame's features are its neighbourhoods
    copied into the blocks of the filters it uses; the normal equations are summed per combination of filters.
    `ridge` is relative to the mean diagonal (it also picks one solution where base and classes overlap).
    Returns the fitted prior's mean squared error on those frames."""
    N, D = frames.shape[2:]
    g, width = prior.side, prior.prior_base.shape[1]
    grids = frames[:, :-1].reshape(-1, g, g, D).permute(0, 3, 1, 2).float()
    cols = neighbourhoods(grids, prior.kernel).double().cpu()  # (M, N, width)
    change = (frames[:, 1:] - frames[:, :-1]).reshape(-1, N, D).double().cpu()
    M = cols.shape[0]
    offsets = [1]  # block index of each component's class 0; block 0 is the base filter
    for table in prior.prior_action:
        offsets.append(offsets[-1] + table.shape[0])
    blocks = offsets[-1]
    active = torch.zeros(M, blocks, dtype=torch.bool)
    active[:, 0] = True
    if actions is not None and has_actions is not None:
        a = actions[:, 1:].reshape(M, -1).long().cpu()
        has = has_actions[:, 1:].reshape(M).bool().cpu()
        for c in range(len(prior.prior_action)):
            active[torch.arange(M)[has], offsets[c] + a[has, c]] = True
    gram = torch.zeros(blocks * width, blocks * width, dtype=torch.float64)
    rhs = torch.zeros(blocks * width, D, dtype=torch.float64)
    for key in torch.unique(active, dim=0):
        rows = (active == key).all(1)
        g_sum = torch.einsum("mnw,mnv->wv", cols[rows], cols[rows])
        r_sum = torch.einsum("mnw,mnd->wd", cols[rows], change[rows])
        idx = torch.cat([torch.arange(b * width, (b + 1) * width) for b in torch.nonzero(key).flatten().tolist()])
        gram[idx[:, None], idx[None, :]] += g_sum.repeat(len(idx) // width, len(idx) // width)
        rhs[idx] += r_sum.repeat(len(idx) // width, 1)
    lam = ridge * float(gram.diagonal().mean()) + 1e-12
    theta = torch.linalg.solve(gram + lam * torch.eye(len(gram), dtype=torch.float64), rhs)  # (blocks*width, D)
    weights = theta.T.reshape(D, blocks, width).permute(1, 0, 2).float()  # (blocks, D, width)
    prior.prior_base.copy_(weights[0])
    for c, table in enumerate(prior.prior_action):
        table.copy_(weights[offsets[c] : offsets[c + 1]])
    if actions is None or has_actions is None:
        guess = prior(frames[:, :-1])
    else:  # each frame's own action led into it
        guess = prior(frames[:, :-1], actions[:, 1:], has_actions[:, 1:])
    return float((guess.float() - frames[:, 1:].float()).pow(2).mean())
