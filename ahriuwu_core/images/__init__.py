"""Images: metrics on them, pictures drawn from them, motion between them.

Modules: `metrics` (PSNR / SSIM / LPIPS with the HUD mask honoured, latent metrics, bootstrap intervals),
`lpips_weights` (offline provisioning of LPIPS's ImageNet backbones: `python -m ahriuwu_core.images.lpips_weights`),
`pictures` (strips, GIFs, line plots for reports and the UI), `motion` (global image motion by phase correlation).
"""
