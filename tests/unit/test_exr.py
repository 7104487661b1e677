"""OpenEXR sequences (models.io.exr through models.sequence): bit-exact round trips, alpha, layers, data windows,
non-finite samples, compression, resume, and clear errors for broken files. Files are written either by the
pack or directly with the OpenEXR bindings (as another application would)."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

OpenEXR = pytest.importorskip("OpenEXR")

from models import sequence as seq  # noqa: E402
from models.io import exr  # noqa: E402
from models.sequence import SequenceError, load_image_sequence, save_image_sequence  # noqa: E402


def _extreme_halves(shape, seed=0) -> np.ndarray:
    """Random half values from -100 to 100 plus the awkward ones: +-0, subnormals, 65504, values just above 1."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 30).clip(-100, 100).astype(np.float16)
    special = np.array([0.0, -0.0, 6e-8, -6e-8, 1e-5, 1.0009765625, 100.0, -100.0, 65504.0, -65504.0],
                       dtype=np.float16)
    x.reshape(-1)[:special.size] = special
    return x


def _write(path, channels, header=None):
    hdr = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    hdr.update(header or {})
    OpenEXR.File(hdr, dict(channels)).write(str(path))  # a copy: the bindings replace the dict's arrays


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a).view(np.uint16 if a.dtype == np.float16 else np.uint32)


# ------------------------------------------------------------------------------------------ round trips
def test_half_round_trip_is_bit_exact_with_values_above_one_and_negative(tmp_path):
    h, w = 37, 53
    planes = {c: _extreme_halves((h, w), seed=i) for i, c in enumerate("RGB")}
    planes["A"] = np.random.default_rng(9).random((h, w)).astype(np.float16)
    src = tmp_path / "src"
    src.mkdir()
    for n in (1001, 1002, 1003):
        _write(src / f"plate.{n:04d}.exr", {c: np.roll(p, n, axis=1) for c, p in planes.items()})
    images, numbers, alpha = load_image_sequence(src, "plate.####.exr", return_alpha=True)
    assert numbers == [1001, 1002, 1003]
    assert images.dtype == torch.float32 and images.shape == (3, h, w, 3)
    assert float(images.max()) == 65504.0 and float(images.min()) == -65504.0  # nothing clamped
    save_image_sequence(images, tmp_path / "out", "plate.%04d.exr", frame_numbers=numbers, alpha=alpha)
    for n in numbers:
        got = OpenEXR.File(str(tmp_path / "out" / f"plate.{n:04d}.exr"), separate_channels=True).channels()
        assert sorted(got) == ["A", "B", "G", "R"]
        for c, p in planes.items():
            px = got[c].pixels
            assert px.dtype == np.float16, "written as half by default"
            assert np.array_equal(_bits(px), _bits(np.roll(p, n, axis=1))), f"frame {n} channel {c} not bit-exact"


def test_float_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(3)
    rgb = (rng.standard_normal((2, 19, 23, 3)) * 40).astype(np.float32)
    rgb[0, 0, 0] = [1e-38, -3.4e38, 1e6]  # far outside the half range: float keeps them
    save_image_sequence(torch.from_numpy(rgb), tmp_path / "a", "f_%04d.exr", bit_depth=32, compression="piz")
    first = OpenEXR.File(str(tmp_path / "a" / "f_0001.exr"), separate_channels=True)
    assert first.channels()["R"].pixels.dtype == np.float32
    assert first.header()["compression"] == OpenEXR.PIZ_COMPRESSION
    back, numbers = load_image_sequence(tmp_path / "a", "*.exr")
    assert numbers == [1, 2]
    assert np.array_equal(_bits(back.numpy()), _bits(rgb))
    save_image_sequence(back, tmp_path / "b", "f_%04d.exr", frame_numbers=numbers, bit_depth=32)
    again, _ = load_image_sequence(tmp_path / "b", "f_%04d.exr")
    assert np.array_equal(_bits(again.numpy()), _bits(rgb))


@pytest.mark.parametrize("compression", ["zip", "piz", "zips", "rle", "none"])
def test_lossless_compressions_round_trip_exactly(tmp_path, compression):
    x = torch.from_numpy(_extreme_halves((1, 16, 24, 3)).astype(np.float32))
    save_image_sequence(x, tmp_path, "c.####.exr", frame_numbers=[1001], compression=compression)
    assert torch.equal(load_image_sequence(tmp_path, "c.####.exr")[0], x)


def test_dwaa_is_lossy_but_close_and_keeps_alpha_exact(tmp_path):
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    x = torch.from_numpy(np.stack([xx / 16, yy / 32, (xx + yy) / 64], -1)[None])
    a = torch.from_numpy((xx / 63)[None]).half().float()
    save_image_sequence(x, tmp_path, "d.####.exr", frame_numbers=[1], compression="dwaa", alpha=a)
    f = OpenEXR.File(str(tmp_path / "d.0001.exr"))
    assert f.header()["compression"] == OpenEXR.DWAA_COMPRESSION
    back, _, alpha = load_image_sequence(tmp_path, "d.####.exr", return_alpha=True)
    assert torch.equal(alpha, a)
    assert (back - x).abs().max() / x.abs().max() < 0.02


def test_half_overflow_becomes_inf_and_is_logged(tmp_path, caplog):
    x = torch.tensor([[[[1.0, 70000.0, -1e6]]]])
    with caplog.at_level(logging.WARNING, logger="comfyui-gan-pack"):
        save_image_sequence(x, tmp_path, "o.####.exr", frame_numbers=[1])
    assert "beyond the half-float range" in caplog.text and "bit_depth 32" in caplog.text
    back, _ = load_image_sequence(tmp_path, "o.####.exr", non_finite="keep")
    assert back[0, 0, 0].tolist() == [1.0, float("inf"), float("-inf")]


# ------------------------------------------------------------------------------------------ alpha, layers
def test_alpha_as_mask_and_as_fourth_channel(tmp_path):
    h, w = 8, 10
    a = np.linspace(0, 1, h * w, dtype=np.float16).reshape(h, w)
    rgb = {c: np.full((h, w), v, np.float16) for c, v in zip("RGB", (2.0, 0.5, -0.25))}
    _write(tmp_path / "rgba.0001.exr", {**rgb, "A": a})
    _write(tmp_path / "rgb.0001.exr", rgb)
    images, _, alpha = load_image_sequence(tmp_path, "rgba.####.exr", return_alpha=True)
    assert images.shape[-1] == 3 and images[0, 0, 0].tolist() == [2.0, 0.5, -0.25]
    assert np.array_equal(alpha[0].numpy(), a.astype(np.float32))
    four, _ = load_image_sequence(tmp_path, "rgba.####.exr", channels=4)
    assert np.array_equal(four[0, ..., 3].numpy(), a.astype(np.float32))
    _, _, opaque = load_image_sequence(tmp_path, "rgb.####.exr", return_alpha=True)
    assert bool((opaque == 1).all()), "a frame without alpha is fully opaque"
    # PNG alpha comes out of the same output
    save_image_sequence(torch.rand(1, h, w, 3), tmp_path / "png", "p_%04d.png", alpha=torch.from_numpy(
        a.astype(np.float32))[None])
    _, _, png_alpha = load_image_sequence(tmp_path / "png", "p_%04d.png", return_alpha=True)
    assert (png_alpha[0] - torch.from_numpy(a.astype(np.float32))).abs().max() <= 0.5 / 255


def _layered(path, h=6, w=7):
    ch = {
        "R": np.full((h, w), 1.0, np.float16), "G": np.full((h, w), 2.0, np.float16),
        "B": np.full((h, w), 3.0, np.float16), "A": np.full((h, w), 0.5, np.float16),
        "diffuse.R": np.full((h, w), 10.0, np.float32), "diffuse.G": np.full((h, w), 20.0, np.float32),
        "diffuse.B": np.full((h, w), -30.0, np.float32),
        "beauty.R": np.full((h, w), 4.0, np.float16), "beauty.G": np.full((h, w), 5.0, np.float16),
        "beauty.B": np.full((h, w), 6.0, np.float16), "beauty.A": np.full((h, w), 0.25, np.float16),
        "depth.Z": np.arange(h * w, dtype=np.float32).reshape(h, w),
        "N.X": np.full((h, w), 0.1, np.float16), "N.Y": np.full((h, w), 0.2, np.float16),
        "N.Z": np.full((h, w), 0.3, np.float16),
    }
    _write(path, ch)
    return ch


def test_named_layers(tmp_path):
    ch = _layered(tmp_path / "aov.1001.exr")
    load = lambda layer: load_image_sequence(tmp_path, "aov.####.exr", layer=layer, return_alpha=True)
    img, _, a = load(None)
    assert img[0, 0, 0].tolist() == [1.0, 2.0, 3.0] and float(a[0, 0, 0]) == 0.5
    for name in ("diffuse", "diffuse.*"):
        img, _, a = load(name)
        assert img[0, 0, 0].tolist() == [10.0, 20.0, -30.0] and bool((a == 1).all())
    img, _, a = load("beauty")
    assert img[0, 0, 0].tolist() == [4.0, 5.0, 6.0] and float(a[0, 0, 0]) == 0.25
    img, _, _ = load("depth.Z")
    assert np.array_equal(img[0, ..., 1].numpy(), ch["depth.Z"]) and torch.equal(img[0, ..., 0], img[0, ..., 2])
    img, _, _ = load("depth")  # a one-channel layer is grey
    assert np.array_equal(img[0, ..., 0].numpy(), ch["depth.Z"])
    img, _, _ = load("N")
    assert np.allclose(img[0, 0, 0].numpy(), [0.1, 0.2, 0.3], atol=1e-3)
    with pytest.raises(SequenceError, match=r"no layer 'specular'.*diffuse: diffuse.B diffuse.G diffuse.R"):
        load("specular")


def test_default_layer_when_only_one_layer_holds_colour(tmp_path):
    h, w = 4, 5
    _write(tmp_path / "v.0001.exr", {f"ViewLayer.Combined.{c}": np.full((h, w), v, np.float16)
                                     for c, v in zip("RGBA", (0.1, 0.2, 0.3, 1.0))})
    img, _ = load_image_sequence(tmp_path, "v.####.exr")
    assert np.allclose(img[0, 0, 0].numpy(), [0.1, 0.2, 0.3], atol=1e-3)
    _layered(tmp_path / "m.0001.exr")
    only_layers = {k: v for k, v in
                   exr.read_exr(tmp_path / "m.0001.exr", "diffuse").__dict__.items() if k == "channels"}
    assert only_layers["channels"] == ("diffuse.R", "diffuse.G", "diffuse.B")


def test_multipart_file_part_names_are_layers(tmp_path):
    h, w = 4, 6
    beauty = OpenEXR.Part({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                          {c: np.full((h, w), v, np.float16) for c, v in zip("RGB", (1.0, 2.0, 3.0))}, name="rgba")
    diffuse = OpenEXR.Part({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage},
                           {c: np.full((h, w), v, np.float16) for c, v in zip("RGB", (7.0, 8.0, 9.0))},
                           name="diffuse")
    OpenEXR.File([beauty, diffuse]).write(str(tmp_path / "mp.0001.exr"))
    assert load_image_sequence(tmp_path, "mp.####.exr")[0][0, 0, 0].tolist() == [1.0, 2.0, 3.0]
    assert load_image_sequence(tmp_path, "mp.####.exr", layer="diffuse")[0][0, 0, 0].tolist() == [7.0, 8.0, 9.0]
    assert "diffuse.R" in exr.exr_channels(tmp_path / "mp.0001.exr")


def test_layer_on_a_png_sequence_is_refused(tmp_path):
    save_image_sequence(torch.rand(1, 4, 4, 3), tmp_path, "f_%04d.png")
    with pytest.raises(SequenceError, match="layers.*OpenEXR files only"):
        load_image_sequence(tmp_path, "f_%04d.png", layer="diffuse")


# ------------------------------------------------------------------------------------------ windows
def test_frame_size_is_the_data_window_and_windows_must_match(tmp_path):
    px = {c: np.ones((4, 6), np.float16) for c in "RGB"}
    window = {"dataWindow": ((10, 20), (15, 23)), "displayWindow": ((0, 0), (99, 99))}
    _write(tmp_path / "w.1001.exr", px, window)
    _write(tmp_path / "w.1002.exr", px, window)
    _write(tmp_path / "w.1003.exr", px, {"dataWindow": ((11, 20), (16, 23)), "displayWindow": ((0, 0), (99, 99))})
    images, numbers = load_image_sequence(tmp_path, "w.####.exr", last=1002)
    assert images.shape == (2, 4, 6, 3), "the frame is the data window, not the 100x100 display window"
    with pytest.raises(SequenceError, match=r"frame 1003 \(w\.1003\.exr\) has the data window \(11,20\)-\(16,23\)"
                                            r".*frame 1001 .*\(10,20\)-\(15,23\).*share one data window"):
        load_image_sequence(tmp_path, "w.####.exr")
    _write(tmp_path / "s.0001.exr", px)
    _write(tmp_path / "s.0002.exr", {c: np.ones((5, 6), np.float16) for c in "RGB"})
    with pytest.raises(SequenceError, match="data window"):
        load_image_sequence(tmp_path, "s.####.exr")


# ------------------------------------------------------------------------------------------ NaN / inf
def test_non_finite_samples_are_refused_by_default(tmp_path):
    r = np.ones((3, 4), np.float16)
    r[1, 2] = np.nan
    r[2, 3] = np.inf
    _write(tmp_path / "n.0001.exr", {"R": r, "G": np.ones_like(r), "B": np.ones_like(r)})
    with pytest.raises(SequenceError, match=r"1 NaN and 1 infinite sample\(s\) \(first at x=2, y=1\).*non_finite"):
        load_image_sequence(tmp_path, "n.####.exr")
    zero, _ = load_image_sequence(tmp_path, "n.####.exr", non_finite="zero")
    assert float(zero[0, 1, 2, 0]) == 0.0 and float(zero[0, 2, 3, 0]) == 0.0 and float(zero[0, 0, 0, 0]) == 1.0
    kept, _ = load_image_sequence(tmp_path, "n.####.exr", non_finite="keep")
    assert torch.isnan(kept[0, 1, 2, 0]) and torch.isinf(kept[0, 2, 3, 0])


# ------------------------------------------------------------------------------------------ broken files
def _good_bytes():
    rng = np.random.default_rng(1)
    img = rng.random((96, 128, 3)).astype(np.float32)
    return exr.encode_exr(img, np.ones((96, 128), np.float32), compression="zip")


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.9, 0.99])
def test_truncated_exr_is_a_clear_error(tmp_path, keep):
    data = _good_bytes()
    (tmp_path / "t.0001.exr").write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(SequenceError, match=r"t\.0001\.exr .*truncated or corrupt"):
        load_image_sequence(tmp_path, "t.####.exr")


def test_corrupt_empty_and_foreign_files_are_clear_errors(tmp_path):
    (tmp_path / "e.0001.exr").write_bytes(b"")
    with pytest.raises(SequenceError, match="empty"):
        load_image_sequence(tmp_path, "e.####.exr")
    (tmp_path / "g.0001.exr").write_bytes(b"\x89PNG\r\n\x1a\n" + b"x" * 200)
    with pytest.raises(SequenceError, match="not an OpenEXR file"):
        load_image_sequence(tmp_path, "g.####.exr")
    data = bytearray(_good_bytes())
    data[len(data) // 2:len(data) // 2 + 64] = b"\xff" * 64  # garbage in the middle of the pixel data
    (tmp_path / "c.0001.exr").write_bytes(bytes(data))
    with pytest.raises(SequenceError, match="truncated or corrupt"):
        load_image_sequence(tmp_path, "c.####.exr")


# ------------------------------------------------------------------------------------------ saving
def test_save_numbering_resume_and_atomicity(tmp_path):
    x = torch.rand(3, 8, 8, 3) * 4
    paths = save_image_sequence(x, tmp_path, "plate.####.exr", frame_numbers=[1001, 1002, 1003])
    assert [p.name for p in paths] == ["plate.1001.exr", "plate.1002.exr", "plate.1003.exr"]
    assert seq.existing_frames(tmp_path, "plate.%04d.exr") == {1001, 1002, 1003}
    before = paths[1].read_bytes()
    (tmp_path / ".plate.1003.exr.abc.tmp").write_bytes(b"half")  # what a killed writer leaves
    save_image_sequence(x * 0, tmp_path, "plate.####.exr", frame_numbers=[1001, 1002, 1003], skip_existing=True)
    assert paths[1].read_bytes() == before, "skip_existing must leave existing frames untouched"
    save_image_sequence(x[:1] * 0, tmp_path, "plate.####.exr", frame_numbers=[1003])
    assert not list(tmp_path.glob(".*.tmp")), "stale temporary files removed"
    assert float(load_image_sequence(tmp_path, "plate.####.exr", first=1003)[0].abs().max()) == 0.0
    assert [n for n, _ in seq.list_image_sequence(tmp_path, "*.exr")] == [1001, 1002, 1003]


def test_save_refuses_wrong_depths_and_compressions(tmp_path):
    x = torch.rand(1, 4, 4, 3)
    with pytest.raises(SequenceError, match="half .*16.* or float .*32"):
        save_image_sequence(x, tmp_path, "a.####.exr", bit_depth=8)
    with pytest.raises(SequenceError, match="unknown EXR compression 'lzma'"):
        save_image_sequence(x, tmp_path, "a.####.exr", compression="lzma")
    with pytest.raises(SequenceError, match="32-bit float is .exr only"):
        save_image_sequence(x, tmp_path, "a_%04d.png", bit_depth=32)
    with pytest.raises(SequenceError, match="alpha of shape"):
        save_image_sequence(x, tmp_path, "a.####.exr", alpha=torch.ones(1, 5, 4))
    assert not list(tmp_path.glob("a*"))
