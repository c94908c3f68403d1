"""The dynamics trainer's configuration: the model, the objective's options, the optimizer and the run's limits."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from ..training.optim import OptimConfig
from .config import DynamicsConfig
from .objective import ObjectiveConfig


@dataclass
class DynamicsTrainConfig:
    model: DynamicsConfig = field(default_factory=DynamicsConfig)  # its num_tokens, token_dim and action space
    # are replaced by the training data's
    steps: int = 1000
    batch_size: int = 16  # per rank: the global batch is batch_size x world size
    seq_len: int = 16  # short batches
    long_seq_len: int = 32  # long batches (batch size scaled down to keep frames per step)
    long_ratio: float = 0.1  # fraction of steps that use long batches
    stride: int = 4  # window start stride (frames)
    single_image_fraction: float = 0.3
    context_noise: float = 0.1
    context_prefix_prob: float = 0.5
    shortcut_fraction: float | None = None  # fraction of examples trained on coarse steps (None: the paper's uniform)
    loss_weight: str = "ramp"  # per-frame loss weight: "ramp" (the paper's) or "flat" (`objective.frame_weight`)
    optim: OptimConfig = field(default_factory=OptimConfig)
    prior_lr_scale: float = 1.0  # the action-kernel prior's filters learn at this multiple of optim.lr
    prior_fit_windows: int = 0  # > 0: before training, the prior's filters are set to their least-squares fit on
    # this many training windows (else they start at persistence)
    ema_decay: float = 0.0  # > 0: the model saved for inference is this moving average of the weights
    ckpt_every: int = 200
    log_every: int = 10
    seed: int = 0
    max_nonfinite: int = 5  # consecutive non-finite losses before giving up
    in_memory: bool = True  # load latent stores into RAM (small data); else read windows from zarr
    in_memory_max_bytes: int = 1 << 30  # ... only those whose latents take at most this; larger: from zarr
    time_limit_s: float = 0.0  # > 0: checkpoint and stop once training has run this long
    num_threads: int = 0  # > 0: torch.set_num_threads (CPU); 1 avoids OpenMP thrashing on a shared CPU

    def __post_init__(self):  # dicts (from JSON) become the typed configs
        if self.loss_weight not in ("ramp", "flat"):
            raise ValueError(f"DynamicsTrainConfig.loss_weight={self.loss_weight!r}: expected 'ramp' or 'flat'")
        self.model = _typed(DynamicsConfig, self.model, "DynamicsTrainConfig.model")
        self.optim = _typed(OptimConfig, self.optim, "DynamicsTrainConfig.optim")

    @classmethod
    def from_dict(cls, d: dict) -> "DynamicsTrainConfig":
        return _typed(cls, d, "DynamicsTrainConfig")

    def objective(self) -> ObjectiveConfig:
        return ObjectiveConfig(
            self.single_image_fraction,
            self.context_noise,
            self.context_prefix_prob,
            self.shortcut_fraction,
            self.loss_weight,
        )

    def batch_shape(self, step: int) -> tuple[int, int]:
        """(batch size, frames) for optimizer step `step` (1-based): long batches spread evenly at long_ratio."""
        r = self.long_ratio
        if r > 0 and math.floor(step * r) > math.floor((step - 1) * r):
            return max(1, self.batch_size * self.seq_len // self.long_seq_len), self.long_seq_len
        return self.batch_size, self.seq_len


def _typed(cls, value, what: str):
    """`value` as a `cls`: itself, or built from a dict of its fields (an unknown field is an error)."""
    if isinstance(value, cls):
        return value
    unknown = set(value) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{what}: unknown fields {sorted(unknown)}")
    return cls(**value)
