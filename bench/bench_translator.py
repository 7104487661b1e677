"""Pix2Pix / CycleGAN generators: ResNet-9 (ngf 64, InstanceNorm) and U-Net-256 (ngf 64, BatchNorm)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from bench.run import Row, emit, group, peak_memory, timed

SIZES = [(256, 256, (1, 4)), (512, 512, (1, 4)), (1080, 1920, (1,))]


def build(arch: str):
    from models.translator.base import architecture_builder

    torch.manual_seed(0)
    if arch == "resnet9":
        net = architecture_builder("resnet")(ngf=64, n_blocks=9, norm="instance", use_dropout=False)
    else:
        net = architecture_builder("unet")(depth=8, ngf=64, norm="batch", use_dropout=True)
    # reference initialisation (normal 0, 0.02) plus non-trivial biases and BatchNorm statistics
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                torch.nn.init.normal_(m.bias, 0.0, 0.02)
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.weight, 1.0, 0.02)
            torch.nn.init.zeros_(m.bias)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def frames(batch: int, h: int, w: int) -> torch.Tensor:
    """A deterministic smooth test image batch, NHWC in [0, 1] (what ComfyUI passes)."""
    g = torch.Generator().manual_seed(1)
    low = torch.rand(batch, 3, max(2, h // 32), max(2, w // 32), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return img.permute(0, 2, 3, 1).contiguous()


def padded(x: torch.Tensor, multiple: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    return torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x


def eager(net, images: torch.Tensor) -> torch.Tensor:
    """The reference scripts' way: NCHW float32, no_grad, whole frame (padded to what the net needs)."""
    x = images.permute(0, 3, 1, 2) * 2 - 1
    h, w = x.shape[-2:]
    with torch.no_grad():
        y = net(padded(x, net.size_multiple))[..., :h, :w]
    return ((y + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)


def reference_net(repo: str, arch: str, state):
    spec = importlib.util.spec_from_file_location("gan_pack_ref_networks", Path(repo) / "models" / "networks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    name, norm, drop = ("resnet_9blocks", "instance", False) if arch == "resnet9" else ("unet_256", "batch", True)
    net = mod.define_G(3, 3, 64, name, norm=norm, use_dropout=drop, gpu_ids=[])
    net.load_state_dict(state)
    return net.eval()


@group("translator")
def run(args, device):
    from models import translate

    sizes = SIZES[:1] if args.quick else SIZES
    for arch in ("resnet9", "unet256"):
        net = build(arch)
        ref = None
        if "pix2pix" in args.references:
            ref = reference_net(args.references["pix2pix"], arch, net.state_dict()).to(device)
        for h, w, batches in sizes:
            for b in batches:
                images = frames(b, h, w).to(device)
                big = h * w > 512 * 512
                reps = 1 if big else 3
                label = f"{arch} {w}x{h} b{b}"
                net.to(device)
                with peak_memory(device) as mem:
                    t, base = timed(lambda: eager(net, images), device, repeats=reps, warmup=0 if big else 1)
                base_fps = b / t
                emit(Row("translator", label, "eager", base_fps, mem["mb"], 1.0, 0.0))
                if ref is not None:
                    with peak_memory(device) as mem:
                        t, out = timed(lambda: eager(ref, images), device, repeats=reps, warmup=0 if big else 1)
                    emit(Row("translator", label, "reference", b / t, mem["mb"], (b / t) / base_fps,
                             float((out - base).abs().max()) * 255))
                for path, dtype in (("quality", None), ("fast", torch.bfloat16)):
                    tile = 0
                    with peak_memory(device) as mem:
                        t, out = timed(lambda: translate(net, images, tile_size=tile, device=device, dtype=dtype),
                                       device, repeats=reps, warmup=0 if big else 1)
                    emit(Row("translator", label, path, b / t, mem["mb"], (b / t) / base_fps,
                             float((out.float() - base).abs().max()) * 255))
                del images, base
        # 4K: tiled, bounded memory (peak must not depend on the frame size beyond the tile)
        if not args.quick and arch == "resnet9":
            images = frames(1, 2160, 3840)
            for tile in (512,):
                with peak_memory(device) as mem:
                    t, out = timed(lambda: translate(net, images, tile_size=tile, device=device), device,
                                   repeats=1, warmup=0)
                emit(Row("translator", f"{arch} 3840x2160 tiled {tile}", "quality", 1 / t, mem["mb"],
                         note="peak memory of tiled 4K"))
