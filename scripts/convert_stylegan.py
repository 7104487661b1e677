"""Convert any supported StyleGAN file to this pack's safe ``.safetensors`` (weights + config, no code).

Inputs: NVlabs network pickles (``.pkl``: read without executing anything in them), rosinality
stylegan2-pytorch checkpoints (``.pt``), bare reference state dicts (``.pt``/``.pth``/``.safetensors``) and
gan-pack ``.safetensors``. Usage::

    python scripts/convert_stylegan.py ffhq.pkl                 # -> ffhq.safetensors beside it
    python scripts/convert_stylegan.py in.pt out.safetensors --verify
    python scripts/convert_stylegan.py in.pt out.safetensors --config '{"synthesis_kwargs": {"conv_clamp": 256}}'
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.stylegan import StyleGANLoadError, describe_stylegan, load_stylegan, save_stylegan  # noqa: E402
from models.validate import InputError, check_file_name  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="StyleGAN file (.pkl, .pt, .pth, .safetensors)")
    ap.add_argument("output", nargs="?", help="output .safetensors (default: input name with .safetensors)")
    ap.add_argument("--config", help="JSON overriding the stored/inferred init kwargs (for bare state dicts)")
    ap.add_argument("--verify", action="store_true", help="reload the written file and compare weights and output")
    ap.add_argument("--force", action="store_true", help="overwrite an existing output file")
    ns = ap.parse_args(argv)

    src = Path(ns.input)
    dst = Path(ns.output) if ns.output else src.with_suffix(".safetensors")
    if dst.suffix.lower() != ".safetensors":
        dst = dst.with_suffix(dst.suffix + ".safetensors") if dst.suffix else dst.with_suffix(".safetensors")
    if dst.resolve() == src.resolve():
        dst = dst.with_name(dst.stem + "_gan_pack.safetensors")
    try:  # the same name rules as the node: not hidden (....safetensors), not too long, no odd characters
        check_file_name(dst.name, what="output file name", extension=".safetensors")
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if dst.exists() and not ns.force:
        print(f"error: {dst} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    config = json.loads(ns.config) if ns.config else None
    t0 = time.monotonic()
    try:
        G = load_stylegan(src, config=config)
    except (StyleGANLoadError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"found: {describe_stylegan(G)}")
    print(f"config: {json.dumps(G.config())}")
    try:
        save_stylegan(G, dst)   # refuses NaN/inf weights; the file gets the umask's mode
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {dst} ({dst.stat().st_size / 1e6:.1f} MB) in {time.monotonic() - t0:.1f} s")
    if ns.verify:
        import torch

        H = load_stylegan(dst)
        a, b = G.state_dict(), H.state_dict()
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        z = torch.randn([1, G.z_dim], generator=torch.Generator().manual_seed(0))
        c = torch.zeros([1, G.c_dim])
        if G.c_dim:
            c[0, 0] = 1
        with torch.no_grad():
            same_img = torch.equal(G(z, c), H(z, c))
        print(f"verify: weights {'identical' if same else 'DIFFER'}, output {'identical' if same_img else 'DIFFERS'}")
        if not (same and same_img):
            return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
