"""Evaluation on videos no model trained on: rollouts against baselines, action controllability, pictures, a
report.

Protocol (see README): split by video (`split_videos`) into train, validation and test; the test videos give
the score and the checks, the validation videos are reported beside them (and are what design choices may look
at). Each clip is C context frames then H frames predicted autoregressively, sampled with K=4 and K=64 shortcut
steps. Per horizon: PSNR / SSIM / LPIPS in pixel space outside the HUD mask, plus latent MSE, for the model and
the `baselines` on the same frames (persistence, the tokenizer ceiling, and those that tell skill from blur).
Intervals resample videos, then clips within them. A dream is only worth something where it beats them.

Modules: `config` (EvalConfig and the plan it resolves to), `rollouts` (clips, model glue, rollouts, quick
eval), `baselines`, `scoring` (metrics per horizon, intervals, metrics.json), `action_control` (true vs
shuffled actions, scroll agreement), `checks`, `report` (pictures, report.md), `run` (`evaluate`,
`evaluate_models`); `python -m ahriuwu_core.eval` is the command line.
"""
