"""models/validate.py and the fixes built on it: names, patterns, numbers, weights, caps, file modes, messages."""
from __future__ import annotations

import json
import os
import pickle
import stat
import tracemalloc
from pathlib import Path

import pytest
import torch

import models
from models import validate
from models._files import file_mode, process_umask
from models.keyframe import KeyframeTrainingError
from models.sequence import SequenceError, frame_name, list_image_sequence, save_image_sequence, write_atomic

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "models" / "bundled"


# ------------------------------------------------------------------------------------------ patterns
@pytest.mark.parametrize("pattern, number, name", [
    ("frame_%04d.png", 7, "frame_0007.png"),
    ("frame_####.png", 7, "frame_0007.png"),
    ("%d.png", 12345, "12345.png"),
    ("100%%_%03d.jpg", 5, "100%_005.jpg"),
    ("f_%09d.tif", 1, "f_000000001.tif"),
    ("f_%04d_#.png", 3, "f_0003_#.png"),          # hashes beside a % field are literal
    ("f_%04d.png", 123456, "f_123456.png"),        # wider numbers are never cut
])
def test_frame_names(pattern, number, name):
    assert validate.frame_name(pattern, number) == name
    assert frame_name(pattern, number) == name
    field = validate.check_frame_pattern(pattern)
    assert field.printf() % number == name        # the printf form stays equivalent


@pytest.mark.parametrize("pattern, message", [
    ("f_%0200000000d.png", "width 200000000 is too wide (at most 9 digits"),
    ("f_%010d.png", "too wide"),
    ("##########.png", "too wide"),
    ("%s%04d.png", "'%s' is not a frame-number field"),
    ("frame_%04f.png", "is not a frame-number field"),
    ("frame_%x.png", "is not a frame-number field"),
    ("50%_%04d.png", "is not a frame-number field"),
    ("frame_%04d%", "write %% for a literal percent sign"),
    ("f_%4d.png", "write %04d, not %4d"),
    ("f_%-4d.png", "may only be padded with zeros"),
    ("f_%.3d.png", "may only be padded with zeros"),
    ("%04d_%04d.png", "2 frame-number fields"),
    ("a_##_##.png", "2 runs of '#'"),
    ("sub/f_%04d.png", "without folders"),
    ("f_%04d\n.png", "control characters"),
    ("x" * 300 + "%04d.png", "characters long (at most 200)"),
    ("....%d", "hidden file"),
    (".%04d.png", "hidden file"),
    ("frame.png", "needs a frame-number field"),
    ("x" * 195 + "%09d", "bytes long"),
])
def test_bad_write_patterns_are_refused_with_a_message(pattern, message):
    with pytest.raises(validate.InputError) as info:
        validate.check_frame_pattern(pattern)
    assert message in str(info.value)
    assert not isinstance(info.value, TypeError)


def test_read_patterns():
    for ok in ("*.png", "shot_*.tif", "*", "", None, "frame_%04d.png", "f_####.exr"):
        validate.check_read_pattern(ok)
    for bad, msg in (("%s*.png", "not a frame-number field"), ("../*.png", "without folders"),
                     ("*" * 500, "characters long")):
        with pytest.raises(validate.InputError) as info:
            validate.check_read_pattern(bad)
        assert msg in str(info.value)
    with pytest.raises(validate.InputError, match="outside 0..999999999"):
        validate.frame_name("f_%04d.png", -1)


def test_huge_width_costs_nothing(tmp_path):
    """The pattern of the issue: refused before any folder, file, string or temporary clean-up is made."""
    tracemalloc.start()
    with pytest.raises(SequenceError, match="too wide"):
        save_image_sequence(torch.zeros(1, 4, 4, 3), tmp_path / "out", "f_%0200000000d.png")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1 << 20, peak
    assert not (tmp_path / "out").exists()
    with pytest.raises(SequenceError, match="is not a frame-number field"):
        list_image_sequence(tmp_path, "%s%04d.png")


# ------------------------------------------------------------------------------------------ names
@pytest.mark.parametrize("name, message", [
    ("...", "hidden file"), ("", "it is empty"), ("   ", "it is empty"), (".hidden", "hidden file"),
    ("a/b", "folder separator"), ("a\\b", "folder separator"), ("x" * 300, "bytes long (at most 200)"),
    ("ü" * 120, "bytes long"), ("a\x00b", "control characters"), ("con", "reserved device name"),
    ("trailing.", "ends with a dot"), ("what?", "'?'"),
])
def test_bad_file_names(name, message):
    with pytest.raises(validate.InputError) as info:
        validate.check_file_name(name, extension=".safetensors")
    assert message in str(info.value)


def test_good_file_names():
    assert validate.check_file_name("keyframe look", extension=".safetensors") == "keyframe look.safetensors"
    assert validate.check_file_name(" v2.1_final ", extension=".safetensors") == "v2.1_final.safetensors"
    assert validate.check_file_name("model.SAFETENSORS", extension=".safetensors") == "model.SAFETENSORS"


# ------------------------------------------------------------------------------------------ numbers
def test_finite_numbers_and_images():
    assert validate.check_finite(0.7, "truncation_psi") == 0.7
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(validate.InputError, match="truncation_psi .*give a finite number"):
            validate.check_finite(bad, "truncation_psi", node="StyleGAN Latent")
    with pytest.raises(validate.InputError, match="must be a number"):
        validate.check_finite("x", "strength")

    img = torch.rand(5, 6, 7, 3) * 4.0          # HDR values above 1 pass
    validate.check_image_finite(img, "image", node="Translate Image")
    img[3, 1, 2, 0] = float("nan")
    img[4, 0, 0, 1] = float("inf")
    with pytest.raises(validate.InputError) as info:
        validate.check_image_finite(img, "image", node="Translate Image")
    text = str(info.value)
    assert text.startswith("Translate Image: image: 2 NaN or infinite values in frames 3, 4 of the batch (counting "
                           "from 0, of 5)")
    with pytest.raises(validate.InputError, match="frame 1012"):
        validate.check_image_finite(img[3:4], "images", frame_numbers=[1012])
    validate.check_image_finite(torch.zeros(2, 3, dtype=torch.uint8))  # integer tensors cannot hold NaN


def test_non_finite_weights_are_never_written(tmp_path):
    g = models.load_translator(BUNDLED / "cyclegan" / "day2night_resnet6_in.safetensors")
    with torch.no_grad():
        next(g.parameters()).fill_(float("nan"))
    with pytest.raises(validate.InputError, match="weights are NaN or infinite"):
        models.save_translator(g, tmp_path / "poisoned.safetensors")
    assert list(tmp_path.iterdir()) == []
    G = models.load_stylegan(BUNDLED / "stylegan" / "gan_pack_islands64.safetensors")
    with torch.no_grad():
        list(G.parameters())[-1].fill_(float("inf"))
    with pytest.raises(validate.InputError, match="not written"):
        models.save_stylegan(G, tmp_path / "g.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_keyframe_training_refuses_nan_and_stops_on_a_nan_loss():
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    y = x.flip(-1)
    bad = x.clone()
    bad[0, 1, 3, 3] = float("nan")
    steps = []
    with pytest.raises(KeyframeTrainingError, match="keyframes: 1 NaN or infinite value"):
        train_from_keyframes_(bad, y, progress=lambda *a: steps.append(a))
    with pytest.raises(KeyframeTrainingError, match="painted keyframes"):
        train_from_keyframes_(x, bad, progress=lambda *a: steps.append(a))
    assert steps == []                       # refused before step 1
    with pytest.raises(KeyframeTrainingError, match=r"loss became (nan|inf) at step \d+"):
        train_from_keyframes_(x, y * 1e30, steps=50)


def train_from_keyframes_(x, y, steps=3, **kw):
    from models.keyframe import train_from_keyframes

    return train_from_keyframes(x, y, steps=steps, device="cpu", batch_size=64, **kw)


# ------------------------------------------------------------------------------------------ caps
def test_seed_and_latent_caps(monkeypatch):
    from models.stylegan import interpolate_latents, parse_seeds, style_mix

    assert len(parse_seeds("0-9999")) == 10_000
    for spec in ("0-99999,100000-199999", "0-5000,5001-10000", "0-4294967295"):
        with pytest.raises(validate.InputError, match="more than 10000 seeds in all"):
            parse_seeds(spec)
    with pytest.raises(validate.InputError, match="characters long"):
        parse_seeds("1," * 40_000)
    monkeypatch.setenv("GAN_PACK_MAX_ITEMS", "20")
    with pytest.raises(validate.InputError, match="more than 20 seeds"):
        parse_seeds("1-10,20-30")
    with pytest.raises(validate.InputError, match="21 interpolation frames requested, more than the limit of 20"):
        interpolate_latents(torch.zeros(2, 4, 8), 21)
    monkeypatch.setenv("GAN_PACK_MAX_GRID_CELLS", "100")
    with pytest.raises(validate.InputError, match=r"style-mixing cells \(11 x 10\)"):
        style_mix(torch.zeros(11, 4, 8), torch.zeros(10, 4, 8), [0, 1])


def test_memory_estimate_says_what_and_which_limit(monkeypatch):
    monkeypatch.setenv("GAN_PACK_MAX_MEMORY_GB", "1")
    assert validate.memory_limit_bytes() == 1 << 30
    with pytest.raises(validate.InputError) as info:
        validate.check_memory(3 << 30, "100 images of 1024x1024", node="Synthesize")
    assert str(info.value).startswith("Synthesize: 100 images of 1024x1024 would need 3.0 GB of memory, more than "
                                      "the limit of 1.0 GB")
    monkeypatch.delenv("GAN_PACK_MAX_MEMORY_GB")
    assert validate.memory_limit_bytes() > 0


def test_load_sequence_refuses_a_batch_larger_than_memory(tmp_path, monkeypatch):
    from PIL import Image

    Image.new("RGB", (64, 48)).save(tmp_path / "f_0001.png")
    for i in range(2, 6):
        os.link(tmp_path / "f_0001.png", tmp_path / f"f_{i:04d}.png")
    monkeypatch.setenv("GAN_PACK_MAX_MEMORY_GB", str(5 * 64 * 48 * 3 * 4 / 2 ** 30 * 0.99))
    with pytest.raises(SequenceError, match="loading 5 frames of 64x48 would need"):
        models.load_image_sequence(tmp_path, "*.png")
    assert models.load_image_sequence(tmp_path, "*.png", last=4)[0].shape == (4, 48, 64, 3)


def test_tile_overlap_larger_than_the_tile_is_clamped_to_three_quarters():
    torch.manual_seed(0)
    g = models.ResnetGenerator(3, 3, ngf=4, n_blocks=1, norm="batch").eval()
    x = torch.rand(1, 132, 132, 3)
    huge = models.plan_translation(g, tuple(x.shape), tile_size=64, tile_overlap=2048)
    clamped = models.plan_translation(g, tuple(x.shape), tile_size=64, tile_overlap=48)
    # 2048 acts as 3/4 of the tile: the same tiles (at most 6 x 6, not the 33 x 33 of a 4 px advance) and passes
    assert huge.overlap == 48 and huge.as_dict() == clamped.as_dict(), (huge, clamped)
    assert huge.tiles[0] * huge.tiles[1] <= 36, huge
    a = models.translate(g, x, tile_size=64, tile_overlap=2048)
    b = models.translate(g, x, tile_size=64, tile_overlap=48)
    assert torch.equal(a, b)


# ------------------------------------------------------------------------------------------ declared architectures
def _forge(src: Path, dst: Path, **changes) -> Path:
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata())
    info = json.loads(meta["gan_pack"])
    info["config"].update(changes)
    meta["gan_pack"] = json.dumps(info)
    save_file(load_file(str(src)), str(dst), metadata=meta)
    return dst


def test_metadata_architecture_checked_before_the_network_is_built(tmp_path):
    from safetensors.torch import save_file

    # a 400-byte file claiming a ResNet with ngf 384: refused without building the 1.5 GB network
    meta = {"gan_pack": json.dumps({"format": "gan-pack-translator", "version": 1, "config": {
        "arch": "resnet", "input_nc": 3, "output_nc": 3, "ngf": 384, "n_blocks": 9, "norm": "instance",
        "use_dropout": False, "padding_type": "reflect", "use_bias": True, "affine": False, "n_downsampling": 2}})}
    save_file({"w": torch.zeros(3)}, str(tmp_path / "tiny.safetensors"), metadata=meta)
    assert (tmp_path / "tiny.safetensors").stat().st_size < 1000
    tracemalloc.start()
    with pytest.raises(models.TranslatorLoadError, match="metadata declares n_blocks = 9, but the file holds only 1"):
        models.load_translator(tmp_path / "tiny.safetensors")
    # real tensors, forged width: shapes compared on the meta device
    forged = _forge(BUNDLED / "cyclegan" / "day2night_resnet6_in.safetensors", tmp_path / "f.safetensors", ngf=384)
    with pytest.raises(models.TranslatorLoadError, match=r"has shape \(384, 3, 7, 7\), but the file's tensor is "
                                                         r"\(12, 3, 7, 7\)"):
        models.load_translator(forged)
    forged = _forge(BUNDLED / "stylegan" / "gan_pack_islands64.safetensors", tmp_path / "g.safetensors", w_dim=4096)
    with pytest.raises(models.StyleGANLoadError, match="metadata declares an architecture whose"):
        models.load_stylegan(forged)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20, peak    # ngf 384 would take ~1.5 GB, w_dim 4096 hundreds of MB


def test_loaders_say_what_a_file_is(tmp_path):
    with pytest.raises(models.TranslatorLoadError, match="looks like a StyleGAN model saved by comfyui-gan-pack"):
        models.load_translator(BUNDLED / "stylegan" / "gan_pack_islands64.safetensors")

    sentinel = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    raw, zipped = tmp_path / "raw.pth", tmp_path / "zipped.pth"
    raw.write_bytes(pickle.dumps({"weight": Evil()}, protocol=4))
    torch.save({"weight": Evil()}, zipped)
    loaders = [(models.load_translator, models.TranslatorLoadError), (models.load_style_network,
               models.StyleNetworkLoadError), (models.load_stylegan, models.StyleGANLoadError)]
    for path in (raw, zipped):
        for load, error in loaders:
            with pytest.raises(error) as info:
                load(path)
            text = str(info.value)
            assert f"the pickle references {os.system.__module__}.system" in text, text
            assert "nothing from the file was executed" in text, text
    assert not sentinel.exists()


# ------------------------------------------------------------------------------------------ file modes
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_written_files_get_the_mode_of_a_plain_open(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert process_umask() == umask
        plain = tmp_path / "plain.bin"
        plain.write_bytes(b"x")
        expected = stat.S_IMODE(plain.stat().st_mode)
        assert expected == 0o666 & ~umask
        paths = save_image_sequence(torch.rand(2, 4, 4, 3), tmp_path / "seq", "f_%04d.png")
        g = models.load_translator(BUNDLED / "cyclegan" / "day2night_resnet6_in.safetensors")
        model = models.save_translator(g, tmp_path / "m.safetensors")
        write_atomic(tmp_path / "a.bin", b"data")
        for p in paths + [model, tmp_path / "a.bin"]:
            assert stat.S_IMODE(p.stat().st_mode) == expected, (p, oct(p.stat().st_mode))
        # replacing a file keeps its mode, as open(path, "w") would
        os.chmod(model, 0o640)
        os.chmod(paths[0], 0o664)
        models.save_translator(g, model)
        save_image_sequence(torch.rand(1, 4, 4, 3), tmp_path / "seq", "f_%04d.png")
        assert stat.S_IMODE(model.stat().st_mode) == 0o640
        assert stat.S_IMODE(paths[0].stat().st_mode) == 0o664
        assert file_mode(tmp_path / "new") == expected
        assert not [p for p in (tmp_path / "seq").iterdir() if p.name.endswith(".tmp")]
    finally:
        os.umask(old)


def test_save_sequence_refuses_nan_frames_naming_them(tmp_path):
    frames = torch.rand(3, 4, 4, 3)
    frames[1, 0, 0, 0] = float("nan")
    with pytest.raises(SequenceError, match="Save Image Sequence: images: 1 NaN or infinite value in frame 11"):
        save_image_sequence(frames, tmp_path, "f_%04d.png", frame_numbers=[10, 11, 12])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f_0010.png"]   # frames before it were written


def test_confined_path(tmp_path):
    root = tmp_path / "input"
    (root / "shot").mkdir(parents=True)
    (tmp_path / "secret").mkdir()
    os.symlink(tmp_path / "secret", root / "escape")
    assert validate.confined_path(str(root / "shot"), str(root)) == os.path.realpath(root / "shot")
    for outside in (str(tmp_path / "secret"), str(root / ".." / "secret"), str(root / "escape"), "/etc"):
        with pytest.raises(validate.InputError, match="GAN_PACK_CONFINE_INPUT"):
            validate.confined_path(outside, str(root), node="Load Image Sequence")


def test_public_api():
    for name in ("InputError", "check_file_name", "check_frame_pattern", "check_finite", "check_image_finite",
                 "check_tensors_finite", "check_memory"):
        assert getattr(models, name) is getattr(validate, name)
    assert issubclass(SequenceError, validate.InputError) and issubclass(validate.InputError, ValueError)
