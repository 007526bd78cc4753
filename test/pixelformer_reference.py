"""PixelFormer's own network code, imported from ../shared/reference/PixelFormer (MIT,
read-only; see its SOURCE.md) for same-weights comparisons. Tests that need it skip
with a reason when the folder is absent.

PixelFormer imports `mmcv.cnn.ConvModule`; mmcv does not install here, so a minimal
stand-in is registered under that name first: conv -> norm -> ReLU with mmcv's
submodule names (`conv`, `bn` / `gn`, bias only without a norm), which is what decides
the key names in PixelFormer's released checkpoints.
"""
import contextlib
import importlib.util
import io
import os
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

PACKAGE = "pixelformer_reference_networks"


def reference_dir():
    """$PIXELFORMER_REFERENCE, else shared/reference/PixelFormer beside the checkout or
    one of its parents (the main checkout's ../shared; a worktree's ../../shared)."""
    if os.environ.get("PIXELFORMER_REFERENCE"):
        path = Path(os.environ["PIXELFORMER_REFERENCE"])
        return path if (path / "pixelformer" / "networks").is_dir() else None
    for parent in Path(__file__).resolve().parents[1:]:
        path = parent / "shared" / "reference" / "PixelFormer"
        if (path / "pixelformer" / "networks").is_dir():
            return path
    return None


class ConvModule(nn.Module):
    """mmcv.cnn.ConvModule as PixelFormer uses it: conv (bias only without a norm) ->
    norm (BN or GN, named 'bn' / 'gn' as mmcv names them) -> ReLU, Kaiming init."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, conv_cfg=None, norm_cfg=None,
                 act_cfg=dict(type="ReLU"), inplace=True, **unused):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=norm_cfg is None)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        self.norm_name = None
        if norm_cfg is not None:
            kind = norm_cfg["type"]
            if kind == "BN":
                self.norm_name, norm = "bn", nn.BatchNorm2d(out_channels)
            elif kind == "GN":
                self.norm_name, norm = "gn", nn.GroupNorm(norm_cfg["num_groups"], out_channels)
            else:
                raise NotImplementedError(f"stand-in ConvModule: norm {kind}")
            self.add_module(self.norm_name, norm)
        self.activate = nn.ReLU(inplace=inplace) if act_cfg is not None else None

    def forward(self, x):
        x = self.conv(x)
        if self.norm_name:
            x = getattr(self, self.norm_name)(x)
        return self.activate(x) if self.activate is not None else x


def _install_mmcv_stand_in():
    if "mmcv" in sys.modules:
        return
    mmcv, cnn = types.ModuleType("mmcv"), types.ModuleType("mmcv.cnn")
    cnn.ConvModule = ConvModule
    mmcv.cnn = cnn
    sys.modules.update({"mmcv": mmcv, "mmcv.cnn": cnn})


def networks():
    """PixelFormer's `networks` package (PixelFormer.py, SAM.py, PQI.py, swin_transformer.py),
    or a pytest skip when the reference is absent."""
    if PACKAGE in sys.modules:
        return sys.modules[PACKAGE]
    root = reference_dir()
    if root is None:
        pytest.skip("PixelFormer reference not found (../shared/reference/PixelFormer or $PIXELFORMER_REFERENCE)")
    _install_mmcv_stand_in()
    folder = root / "pixelformer" / "networks"
    spec = importlib.util.spec_from_file_location(PACKAGE, folder / "__init__.py", submodule_search_locations=[str(folder)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[PACKAGE] = package
    spec.loader.exec_module(package)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm.models.layers deprecation, meshgrid indexing
        importlib.import_module(f"{PACKAGE}.PixelFormer")
    return package


def build_reference(version: str = "tiny07", max_depth: float = 10.0, seed: int = 0):
    """PixelFormer(version) in eval mode with every weight and BN statistic randomised
    (its own init leaves LayerNorms at 1/0 and BN at 0/1, which would hide mistakes)."""
    module = importlib.import_module(f"{networks().__name__}.PixelFormer")
    torch.manual_seed(seed)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = module.PixelFormer(version=version, inv_depth=False, max_depth=max_depth, pretrained=None)
    randomize(model, seed)
    return model.eval()


def reference_shapes(version: str, max_depth: float = 10.0) -> dict:
    """The state dict of PixelFormer(version) with every parameter on the meta device
    (shapes only: a Swin-L PixelFormer costs no memory and no init time). PixelFormer's
    constructor calls .item(), so parameters are moved to meta as they are registered
    instead of building under torch.device('meta')."""
    module = importlib.import_module(f"{networks().__name__}.PixelFormer")
    register = nn.Module.register_parameter

    def register_on_meta(self, name, param):
        register(self, name, None if param is None else nn.Parameter(param.to("meta"), param.requires_grad))

    nn.Module.register_parameter = register_on_meta
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return module.PixelFormer(version=version, max_depth=max_depth).state_dict()
    finally:
        nn.Module.register_parameter = register


def randomize(model: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise.abs())
            elif name.endswith("running_mean"):
                tensor.copy_(0.1 * noise)
            elif tensor.dim() == 1 and name.endswith("weight"):  # norm scales
                tensor.add_(0.1 * noise)
            else:
                tensor.add_(0.02 * noise)


def save_like_pixelformer(model: nn.Module, path, with_optimizer: bool = True) -> None:
    """What PixelFormer's train.py writes: the DDP-wrapped state dict ('module.' keys)
    under 'model', plus the optimizer and step when saved for resuming."""
    ddp_state = {f"module.{k}": v for k, v in model.state_dict().items()}
    checkpoint = {"model": ddp_state}
    if with_optimizer:
        optimizer = torch.optim.Adam(model.parameters(), lr=4e-5)
        checkpoint.update(optimizer=optimizer.state_dict(), global_step=1000)
    torch.save(checkpoint, path)


def normalize(images: torch.Tensor) -> torch.Tensor:
    """PixelFormer's input: torchvision Normalize with ImageNet mean/std on RGB in [0, 1]."""
    from torchvision import transforms

    return transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])(images)
