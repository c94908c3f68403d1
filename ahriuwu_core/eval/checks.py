"""Pass/fail checks on an evaluation's metrics, judged on the test videos: the model beats persistence, few
sampling steps are close to many, nothing is NaN (anywhere)."""

from __future__ import annotations

import math

import numpy as np

from ahriuwu_core.eval.config import variant_name
from ahriuwu_core.images import metrics as M


def check_beats_persistence(
    metrics: dict, horizon: int = 1, series: str | None = None, split: str = "test"
) -> tuple[bool, dict]:
    """The model beats copy-last-frame at `horizon` on `split` (default: the first sampling-steps variant): the
    lower end of the 95% clustered bootstrap interval of its per-clip PSNR margin over persistence is above 0."""
    m = metrics[split]
    series = series or next(iter(m["psnr"]))
    i = m["horizons"].index(horizon)
    model, persist = m["psnr"][series][i], m["psnr"]["persistence"][i]
    low = (m.get("psnr_margin_ci95_low") or {}).get(series)
    high = (m.get("psnr_margin_ci95_high") or {}).get(series)
    low, high = (low[i], high[i]) if low and high else (None, None)
    finite = M.is_finite_number(model) and M.is_finite_number(persist) and M.is_finite_number(low)
    return finite and low > 0, {
        "split": split,
        "horizon": horizon,
        "series": series,
        "model_psnr": model,
        "persistence_psnr": persist,
        "margin_db": model - persist if finite else None,
        "margin_ci95_low": low,
        "margin_ci95_high": high,
        "clips": m.get("clips"),
        "videos": len(m.get("videos") or []),
    }


def check_few_steps_close(
    metrics: dict, fast: str | None = None, slow: str | None = None, tolerance_db: float = 0.5, split: str = "test"
) -> tuple[bool, dict]:
    """K=4 is within `tolerance_db` of K=64 at every horizon on `split`, on the same clips (`psnr_same_clips`
    when K=64 was scored on a subset). Defaults: the fewest and the most sampling steps evaluated
    (config.sampling_steps)."""
    m = metrics[split]
    steps = sorted(metrics["config"]["sampling_steps"])
    fast = fast or variant_name(steps[0], False)
    slow = slow or variant_name(steps[-1], False)
    same = (m.get("psnr_same_clips") or {}).get(slow)
    a, b = (same[fast], same[slow]) if same else (m["psnr"].get(fast), m["psnr"].get(slow))
    if a is None or b is None:
        return False, {"split": split, "reason": f"missing series {fast if a is None else slow}"}
    diffs = [y - x for x, y in zip(a, b)]
    worst = float(np.max(np.abs(diffs)))
    passed = math.isfinite(worst) and worst <= tolerance_db
    return passed, {
        "split": split,
        "fast": fast,
        "slow": slow,
        "mean_diff_db": float(np.mean(diffs)),
        "max_abs_diff_db": worst,
        "tolerance_db": tolerance_db,
        "clips": same["clips"] if same else m.get("clips"),
    }


def check_no_nan(metrics: dict) -> tuple[bool, dict]:
    """No NaN or infinity anywhere in the metrics, any split (None means 'not measured' and is allowed)."""
    bad = []

    def walk(obj, path):
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{path}.{k}" if path else str(k))
        elif isinstance(obj, (list, tuple)):
            for i, v in enumerate(obj):
                walk(v, f"{path}[{i}]")
        elif isinstance(obj, float) and not math.isfinite(obj):
            bad.append(path)

    walk({k: v for k, v in metrics.items() if k != "config"}, "")
    return not bad, {"non_finite": bad[:20], "count": len(bad)}


def judged_split(metrics: dict) -> str:
    """The split the checks judge: test, or the first evaluated (a bench run on validation alone)."""
    return "test" if "test" in metrics["splits"] else metrics["splits"][0]


def run_checks(metrics: dict) -> dict[str, tuple[bool, dict]]:
    """The checks the evaluation asset reports, on `judged_split` (the test videos)."""
    split = judged_split(metrics)
    checks = {"beats_persistence_h1": check_beats_persistence(metrics, 1, split=split), "no_nan": check_no_nan(metrics)}
    steps = sorted(metrics["config"]["sampling_steps"])
    if len(steps) > 1:
        checks[f"k{steps[0]}_within_0.5db_of_k{steps[-1]}"] = check_few_steps_close(metrics, split=split)
    return checks
