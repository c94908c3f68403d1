"""What an evaluation runs: `EvalConfig`, and the plan it resolves to against a loaded world model (the context
noise, the sampling-steps variants the model supports, the series names)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable


@dataclass
class EvalConfig:
    context: int = 16  # C ground-truth context frames
    horizon: int = 16  # H frames predicted autoregressively
    sampling_steps: tuple[int, ...] = (4, 64)
    context_noise: float | None = None  # None = the dynamics checkpoint's training value
    also_zero_context_noise: bool = True  # additionally roll out with context noise 0
    zero_noise_steps: tuple[int, ...] | None = None  # K values for the noise-0 variant (None = all of sampling_steps)
    clips_per_video: int = 2
    seed: int = 0
    strip_horizons: tuple[int, ...] = (1, 4, 8, 16)
    gif: bool = True
    lpips_net: str | None = "alex"  # None skips LPIPS (values reported as null)
    action_agreement: bool = True  # videos whose first action component is an 8-way move: does the view
    # scroll against it?
    mean_readout: bool = True  # also roll out the conditional mean (model_k<K>_mean, K the first steps)
    many_steps_clips_per_video: int = 0  # > 0: variants with more steps than the first (K=64) score only the
    # first N clips of each video (they cost K/4 times as much)
    extras_splits: tuple[str, ...] = ("test", "validation")  # the splits that also get the costly extras: the
    # variants past the first (more steps, context noise 0), the mean
    # readout, the shuffled-action rollouts and the quick eval
    blur_sigmas: tuple[float, ...] = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)  # persistence_blur's grid (pixels)
    shuffled_clips_per_video: int = 0  # > 0: the shuffled-action rollouts (the action gap) only on the first
    # N clips of each video
    bootstrap_resamples: int = 2000  # for the 95% intervals of the per-clip margin over persistence
    quick_eval: bool = True
    batch_size: int = 8  # clips per rollout batch

    def __post_init__(self):
        self.sampling_steps = tuple(int(k) for k in self.sampling_steps)
        self.strip_horizons = tuple(int(h) for h in self.strip_horizons)
        self.extras_splits = tuple(self.extras_splits)
        self.blur_sigmas = tuple(float(s) for s in self.blur_sigmas)
        if self.zero_noise_steps is not None:
            self.zero_noise_steps = tuple(int(k) for k in self.zero_noise_steps)
        if self.context < 1 or self.horizon < 1:
            raise ValueError(f"EvalConfig: context and horizon must be >= 1 (got {self.context}, {self.horizon})")
        if not self.sampling_steps:
            raise ValueError("EvalConfig.sampling_steps is empty")


def variant_name(steps: int, zero_noise: bool) -> str:
    return f"model_k{steps}" + ("_noise0" if zero_noise else "")


def usable_steps(requested, k_max: int | None) -> tuple[int, ...]:
    """Sampling-step counts the model was trained for: K > k_max is clamped to k_max (the finest trained step),
    duplicates dropped, order kept."""
    out = []
    for k in requested:
        k = min(int(k), int(k_max)) if k_max else int(k)
        if k not in out:
            out.append(k)
    return tuple(out)


@dataclass
class Plan:
    """An EvalConfig resolved against the world model: what is rolled out, and under which names."""

    cfg: EvalConfig  # sampling_steps / zero_noise_steps clamped to the model's k_max
    noise: float  # context noise of the main variants
    variants: list[tuple[int, bool]]  # (sampling steps, context noise 0?)
    primary: str  # the first variant: the one compared with baselines and shuffled actions
    mean_name: str | None  # the conditional-mean readout's series, if rolled out
    shuffled_actions: bool = True  # also roll out the first variant with shuffled actions (the action gap)


def split_plan(plan: Plan, split: str) -> Plan:
    """The plan for one split: without the costly extras (`EvalConfig.extras_splits`), the first variant alone
    (no other variant, mean readout, shuffled actions or quick eval)."""
    if split in plan.cfg.extras_splits:
        return plan
    return dataclasses.replace(
        plan,
        cfg=dataclasses.replace(plan.cfg, quick_eval=False),
        variants=plan.variants[:1],
        mean_name=None,
        shuffled_actions=False,
    )


def resolve_plan(
    cfg: EvalConfig, world_model, train_context_noise: float | None, log: Callable[[str], None] = print
) -> Plan:
    noise = cfg.context_noise if cfg.context_noise is not None else train_context_noise
    if noise is None:
        noise = 0.1
        log("evaluate: the dynamics checkpoint records no training context_noise; using 0.1")
    k_max = getattr(getattr(world_model, "cfg", None), "k_max", None)
    steps = usable_steps(cfg.sampling_steps, k_max)
    if steps != cfg.sampling_steps:
        log(f"evaluate: sampling steps {cfg.sampling_steps} -> {steps} (the model's finest step is 1/{k_max})")
    cfg = dataclasses.replace(
        cfg, sampling_steps=steps, zero_noise_steps=usable_steps(cfg.zero_noise_steps or steps, k_max)
    )
    variants = [(k, False) for k in cfg.sampling_steps]
    if cfg.also_zero_context_noise and noise != 0.0:
        variants += [(k, True) for k in cfg.zero_noise_steps]
    return Plan(
        cfg=cfg,
        noise=noise,
        variants=variants,
        primary=variant_name(cfg.sampling_steps[0], False),
        mean_name=f"model_k{cfg.sampling_steps[0]}_mean" if cfg.mean_readout else None,
    )
