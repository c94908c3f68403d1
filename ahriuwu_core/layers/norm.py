"""RMSNorm, shared by the tokenizer and the world model (computed in fp32, returned in the input's dtype)."""

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        # one fused kernel: on CPU the six elementwise ops it replaces cost more in dispatch than in arithmetic
        return F.rms_norm(x.float(), self.weight.shape, self.weight, self.eps).to(x.dtype)
