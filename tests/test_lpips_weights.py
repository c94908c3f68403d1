"""LPIPS backbones load offline from torch hub's cache and are the real ImageNet ones (not random)."""

import os

import pytest
import torch
import torch.nn.functional as F

from ahriuwu_core.images import lpips_weights


def natural_image(size=128, seed=0):
    """Smooth gradients + a few flat discs + fine texture: enough structure for ImageNet features."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    img = torch.stack([0.2 + 0.6 * x, 0.3 + 0.4 * y, 0.5 + 0.3 * torch.sin(6 * x + 3 * y)])
    for _ in range(6):
        cx, cy, r = torch.rand(3, generator=g)
        colour = torch.rand(3, 1, 1, generator=g)
        disc = (((x - cx) ** 2 + (y - cy) ** 2) < (0.05 + 0.15 * r) ** 2).float()
        img = img * (1 - disc) + colour * disc
    img = img + 0.08 * torch.sin(40 * x) * torch.sin(37 * y)
    return img.clamp(0, 1)[None]


def gaussian_blur(img, sigma=1.0):
    k = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-(k**2) / (2 * sigma**2))
    k = k / k.sum()
    w = (k[:, None] * k[None, :]).expand(3, 1, 7, 7)
    return F.conv2d(F.pad(img, (3, 3, 3, 3), mode="reflect"), w, groups=3)


def test_hub_file_names_match_torchvision():
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    assert lpips_weights.hub_checkpoint_path("alexnet").name == os.path.basename(AlexNet_Weights.IMAGENET1K_V1.url)
    assert lpips_weights.hub_checkpoint_path("vgg16").name == os.path.basename(VGG16_Weights.IMAGENET1K_V1.url)
    assert lpips_weights.hub_checkpoint_path("alexnet").name == "alexnet-owt-7be5be79.pth"


def test_flax_to_torchvision_transposes_hwio_to_oihw():
    import torchvision

    torch.manual_seed(3)
    src = torchvision.models.alexnet(weights=None).state_dict()
    flax = {"AlexNet_0": {}}
    for i, idx in enumerate(lpips_weights._ALEXNET_CONV_INDICES):
        flax["AlexNet_0"][f"Conv_{i}"] = {
            "kernel": src[f"features.{idx}.weight"].numpy().transpose(2, 3, 1, 0),  # OIHW -> HWIO
            "bias": src[f"features.{idx}.bias"].numpy(),
        }
    out = lpips_weights.flax_to_torchvision("alexnet", flax)
    assert set(out) == set(src)
    for idx in lpips_weights._ALEXNET_CONV_INDICES:
        assert torch.equal(out[f"features.{idx}.weight"], src[f"features.{idx}.weight"])
        assert torch.equal(out[f"features.{idx}.bias"], src[f"features.{idx}.bias"])
    # a wrong layer count is an error, not a silent partial model
    del flax["AlexNet_0"]["Conv_4"]
    with pytest.raises(ValueError, match="alexnet"):
        lpips_weights.flax_to_torchvision("alexnet", flax)


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_backbone_is_real_and_offline(net, monkeypatch):
    import lpips

    lpips_weights.provision(log=lambda s: None)  # no-op when present (the Makefile provisions beforehand)

    def no_download(*a, **k):
        raise AssertionError("torch hub tried to download: weights were not provisioned")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    model = lpips.LPIPS(net=net, verbose=False).eval()
    img = natural_image()
    noisy = (img + 0.3 * torch.randn(img.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    with torch.no_grad():
        d_blur = float(model(gaussian_blur(img) * 2 - 1, img * 2 - 1))
        d_noise = float(model(noisy * 2 - 1, img * 2 - 1))
        d_same = float(model(img * 2 - 1, img * 2 - 1))
    # Measured: real backbones give blur ~0.08-0.12, noise ~0.7-1.1; a random backbone gives noise ~0.1.
    assert d_same < 1e-6
    assert d_noise > 0.4, d_noise
    assert d_blur < d_noise / 4, (d_blur, d_noise)
