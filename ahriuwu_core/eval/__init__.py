"""Held-out evaluation: rollouts against baselines, action controllability, pictures, a report.

Protocol (see README): split by video (`split_videos`); each held-out clip is C context frames then H frames
predicted autoregressively, sampled with K=4 and K=64 shortcut steps, with the context noise at its training
value and at 0. Per horizon: PSNR / SSIM / LPIPS in pixel space outside the HUD mask, plus latent MSE.
Baselines on the same frames: persistence (the ground-truth last context frame, in pixels) and the
tokenizer ceiling decode(encode(gt)). A dream is only worth something where it beats persistence.

Modules: `config` (EvalConfig and the plan it resolves to), `rollouts` (clips, model glue, rollouts, quick
eval), `scoring` (metrics per horizon, baselines, intervals), `action_control` (true vs shuffled actions,
scroll agreement), `checks`, `report` (pictures, metrics.json, report.md), `run` (`evaluate`,
`evaluate_models`); `python -m ahriuwu_core.eval` is the command line.
"""
