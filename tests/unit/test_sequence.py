"""Frame sequences on disk (models.sequence): patterns, 8/16-bit PNG, JPEG, TIFF, atomic and resumable saving."""
from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import sequence as seq
from models.sequence import (SequenceError, existing_frames, list_image_sequence, load_image_sequence,
                             save_image_sequence)

REPO = Path(__file__).resolve().parents[2]


def touch_png(path: Path, value: int = 0, size=(4, 3)) -> None:
    Image.new("RGB", size, (value, value, value)).save(path)


# ------------------------------------------------------------------------------------------ listing
def test_printf_hash_and_glob_patterns(tmp_path):
    for n in (1, 2, 3, 10, 12):
        touch_png(tmp_path / f"frame_{n:04d}.png")
    touch_png(tmp_path / "frame_7.png")           # wrong padding for %04d
    touch_png(tmp_path / "other_0005.png")
    (tmp_path / "frame_0004.txt").write_text("x")
    (tmp_path / ".frame_0006.png.abc.tmp").write_bytes(b"half")  # an interrupted write
    nums = lambda frames: [n for n, _ in frames]  # noqa: E731
    assert nums(list_image_sequence(tmp_path, "frame_%04d.png")) == [1, 2, 3, 10, 12]
    assert nums(list_image_sequence(tmp_path, "frame_####.png")) == [1, 2, 3, 10, 12]
    assert nums(list_image_sequence(tmp_path, "frame_*.png")) == [1, 2, 3, 7, 10, 12]
    assert nums(list_image_sequence(tmp_path, "*")) == [1, 2, 3, 5, 7, 10, 12]
    assert nums(list_image_sequence(tmp_path, "frame_%04d.png", first=2, last=10)) == [2, 3, 10]
    # step counts frames present in the range, gaps skipped
    assert nums(list_image_sequence(tmp_path, "frame_%04d.png", step=2)) == [1, 3, 12]
    assert nums(list_image_sequence(tmp_path, "frame_%04d.png", first=2, step=2)) == [2, 10]
    assert existing_frames(tmp_path, "frame_%04d.png") == {1, 2, 3, 10, 12}
    assert existing_frames(tmp_path / "missing", "frame_%04d.png") == set()
    path = list_image_sequence(tmp_path, "frame_%04d.png")[0][1]
    assert path == tmp_path / "frame_0001.png"


def test_duplicate_frame_numbers_and_bad_patterns_are_clear_errors(tmp_path):
    touch_png(tmp_path / "a_0001.png")
    touch_png(tmp_path / "b_0001.png")
    with pytest.raises(SequenceError, match="frame 1 appears twice"):
        list_image_sequence(tmp_path, "*.png")
    with pytest.raises(SequenceError, match="without folders"):
        list_image_sequence(tmp_path, "sub/frame_%04d.png")
    with pytest.raises(SequenceError, match="does not exist"):
        list_image_sequence(tmp_path / "nope")
    with pytest.raises(SequenceError, match="frame-number field"):
        save_image_sequence(torch.zeros(1, 2, 2, 3), tmp_path, "frame.png")


# ------------------------------------------------------------------------------------------ reading
def test_load_8bit_png_jpeg_tiff_and_alpha(tmp_path):
    rng = np.random.RandomState(0)
    a = (rng.rand(2, 6, 8, 3) * 255).astype(np.uint8)
    Image.fromarray(a[0]).save(tmp_path / "s_001.png")
    Image.fromarray(a[1]).save(tmp_path / "s_002.tif")
    images, numbers = load_image_sequence(tmp_path, "s_*")
    assert numbers == [1, 2] and images.shape == (2, 6, 8, 3) and images.dtype == torch.float32
    assert np.array_equal(np.rint(images.numpy() * 255).astype(np.uint8), a)
    smooth = np.tile(np.linspace(0, 255, 8).astype(np.uint8)[None, :, None], (6, 1, 3))
    Image.fromarray(smooth).save(tmp_path / "j_5.jpg", quality=98)
    jpg, n = load_image_sequence(tmp_path, "j_*.jpg")
    assert n == [5] and np.abs(jpg[0].numpy() * 255 - smooth).max() < 8
    rgba = (rng.rand(6, 8, 4) * 255).astype(np.uint8)
    Image.fromarray(rgba).save(tmp_path / "r_1.png")
    rgb, _ = load_image_sequence(tmp_path, "r_*.png")
    four, _ = load_image_sequence(tmp_path, "r_*.png", channels=4)
    assert rgb.shape[-1] == 3 and four.shape[-1] == 4
    assert np.array_equal(np.rint(four[0].numpy() * 255).astype(np.uint8), rgba)
    gray = (rng.rand(6, 8) * 255).astype(np.uint8)
    Image.fromarray(gray).save(tmp_path / "g_1.png")
    g, _ = load_image_sequence(tmp_path, "g_*.png", channels=4)
    assert np.array_equal(np.rint(g[0, ..., :3].numpy() * 255), np.repeat(gray[..., None], 3, 2))
    assert (g[0, ..., 3] == 1).all()


def test_frames_of_different_sizes_are_a_clear_error(tmp_path):
    touch_png(tmp_path / "f_1.png", size=(4, 3))
    touch_png(tmp_path / "f_2.png", size=(5, 3))
    with pytest.raises(SequenceError, match=r"frame 2 \(f_2.png\) is 5x3 but frame 1 \(f_1.png\) is 4x3"):
        load_image_sequence(tmp_path, "f_*.png")
    with pytest.raises(SequenceError, match="no frames"):
        load_image_sequence(tmp_path, "f_*.png", first=7)


def _tiff16(path: Path, a: np.ndarray, order: str) -> None:
    """A minimal uncompressed 16-bit RGB(A) TIFF (what compositing packages write), written by hand."""
    h, w, c = a.shape
    data = a.astype(order + "u2").tobytes()
    entries = [(256, 3, 1, w), (257, 3, 1, h), (258, 3, c, None), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, None), (277, 3, 1, c), (278, 3, 1, h), (279, 4, 1, len(data))]
    if c == 4:
        entries.append((338, 3, 1, 2))
    ifd = 8
    bps = ifd + 2 + 12 * len(entries) + 4
    start = bps + 2 * c
    out = (b"II" if order == "<" else b"MM") + struct.pack(order + "HI", 42, ifd) + struct.pack(order + "H", len(entries))
    for tag, typ, cnt, val in entries:
        val = bps if tag == 258 else start if tag == 273 else val
        out += struct.pack(order + ("HHIHH" if typ == 3 and cnt == 1 else "HHII"), tag, typ, cnt,
                           *((val, 0) if typ == 3 and cnt == 1 else (val,)))
    out += struct.pack(order + "I", 0) + struct.pack(order + "H" * c, *([16] * c)) + data
    path.write_bytes(out)


@pytest.mark.parametrize("order", ["<", ">"])
def test_16bit_rgb_tiff_keeps_full_precision(tmp_path, order):
    a = (np.random.RandomState(1).rand(5, 7, 3) * 65535).astype(np.uint16)
    _tiff16(tmp_path / "t_1.tif", a, order)
    images, _ = load_image_sequence(tmp_path, "t_*.tif")
    assert np.array_equal(np.rint(images[0].numpy() * 65535).astype(np.uint16), a)


def _decode_png_reference(data: bytes) -> np.ndarray:
    """Independent, slow, by-the-spec PNG decoder (non-interlaced) to check the encoder's files."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, ihdr = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, depth, ctype, _, _, interlace = ihdr
    assert interlace == 0
    c = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    bpp = c * depth // 8
    stride = w * bpp
    raw = zlib.decompress(idat)
    out = bytearray()
    prev = bytearray(stride)
    for y in range(h):
        ftype, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            cc = prev[i - bpp] if i >= bpp else 0
            if ftype == 1:
                line[i] = (line[i] + a) & 255
            elif ftype == 2:
                line[i] = (line[i] + b) & 255
            elif ftype == 3:
                line[i] = (line[i] + ((a + b) >> 1)) & 255
            elif ftype == 4:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else cc)) & 255
            else:
                assert ftype == 0
        out += line
        prev = line
    arr = np.frombuffer(bytes(out), dtype=">u2" if depth == 16 else np.uint8)
    return arr.reshape(h, w, c).astype(np.uint16 if depth == 16 else np.uint8)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_encoder_is_standard_png(channels):
    rng = np.random.RandomState(channels)
    a = (rng.rand(9, 13, channels) * 65535).astype(np.uint16)
    a[:4] = np.linspace(0, 65535, 13).astype(np.uint16)[None, :, None]  # smooth rows pick other filters
    data = seq.encode_png(a)
    assert np.array_equal(_decode_png_reference(data), a)
    filters = set(zlib.decompress(data[data.index(b"IDAT") + 4:]) [::13 * channels * 2 + 1])
    assert len(filters) > 1  # adaptive filtering is exercised, not just filter 0


def test_16bit_round_trip_is_exact_and_finer_than_8bit(tmp_path):
    rng = np.random.RandomState(2)
    images = torch.from_numpy(rng.rand(3, 16, 24, 3).astype(np.float32))
    images[0, :, :, 0] = torch.linspace(0, 1, 24)[None]  # a gradient 8 bits would band
    save_image_sequence(images, tmp_path / "d16", "f_%03d.png", bit_depth=16)
    save_image_sequence(images, tmp_path / "d8", "f_%03d.png", bit_depth=8)
    back16, n16 = load_image_sequence(tmp_path / "d16", "f_%03d.png")
    back8, _ = load_image_sequence(tmp_path / "d8", "f_%03d.png")
    assert n16 == [1, 2, 3]
    err16, err8 = (back16 - images).abs().max().item(), (back8 - images).abs().max().item()
    assert err16 <= 0.5 / 65535 + 1e-7
    assert 0.3 / 255 < err8 <= 0.5 / 255 + 1e-7
    # saving what was loaded gives the same 16-bit file contents (lossless both ways)
    save_image_sequence(back16, tmp_path / "again", "f_%03d.png", bit_depth=16, frame_numbers=n16)
    for n in n16:
        a = np.asarray(seq.read_image(tmp_path / "d16" / f"f_{n:03d}.png"))
        b = np.asarray(seq.read_image(tmp_path / "again" / f"f_{n:03d}.png"))
        assert np.array_equal(a, b)
    # 16-bit grayscale written by Pillow reads at full precision too
    g = (rng.rand(5, 6) * 65535).astype(np.uint16)
    Image.fromarray(g).save(tmp_path / "gray_1.png")
    (gray,), _ = load_image_sequence(tmp_path, "gray_*.png")
    assert np.array_equal(np.rint(gray[..., 0].numpy() * 65535).astype(np.uint16), g)


# ------------------------------------------------------------------------------------------ saving
def test_save_keeps_frame_numbers_and_resumes(tmp_path):
    images = torch.rand(3, 8, 8, 3)
    paths = save_image_sequence(images, tmp_path, "shot_%05d.png", frame_numbers=[101, 105, 110])
    assert [p.name for p in paths] == ["shot_00101.png", "shot_00105.png", "shot_00110.png"]
    assert existing_frames(tmp_path, "shot_%05d.png") == {101, 105, 110}
    first = paths[0].read_bytes()
    stamp = paths[0].stat().st_mtime_ns
    calls = []
    again = save_image_sequence(torch.zeros(3, 8, 8, 3), tmp_path, "shot_%05d.png", frame_numbers=[101, 105, 111],
                                skip_existing=True, progress=lambda d, t: calls.append((d, t)))
    assert again[2].name == "shot_00111.png"
    assert paths[0].read_bytes() == first and paths[0].stat().st_mtime_ns == stamp  # untouched
    assert np.asarray(Image.open(again[2])).max() == 0                             # the new one written
    assert calls == [(1, 3), (2, 3), (3, 3)]
    save_image_sequence(torch.zeros(1, 8, 8, 3), tmp_path, "shot_%05d.png", frame_numbers=[101])
    assert np.asarray(Image.open(paths[0])).max() == 0  # without skip_existing: overwritten
    plain = save_image_sequence(torch.zeros(2, 4, 4, 3), tmp_path / "p", "p_%02d.jpg", start=7)
    assert [p.name for p in plain] == ["p_07.jpg", "p_08.jpg"]
    with pytest.raises(SequenceError, match="16-bit frames are written as PNG only"):
        save_image_sequence(torch.zeros(1, 4, 4, 3), tmp_path, "x_%d.jpg", bit_depth=16)
    with pytest.raises(SequenceError, match="2 images but 1 frame numbers"):
        save_image_sequence(torch.zeros(2, 4, 4, 3), tmp_path, "x_%d.png", frame_numbers=[1])


def test_a_failing_write_leaves_no_file_and_no_temporary(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(seq.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_image_sequence(torch.rand(1, 8, 8, 3), tmp_path, "f_%04d.png")
    assert list(tmp_path.iterdir()) == []


WRITER = textwrap.dedent("""
    import sys, torch
    sys.path.insert(0, {repo!r})
    from models.sequence import save_image_sequence
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(150, 64, 96, 3, generator=g)
    print("ready", flush=True)
    while True:  # keep rewriting every frame until killed
        save_image_sequence(frames, {out!r}, "f_%04d.png", bit_depth=16, compress_level=1, fsync=False)
""")


def test_killed_writer_never_leaves_a_partial_frame(tmp_path):
    """SIGKILL a process that is writing frames, many times at random moments, and watch the folder while it
    writes: every file under a frame name always decodes completely and equals the intended frame."""
    out = tmp_path / "out"
    expected = torch.rand(150, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    rng = np.random.RandomState(0)
    checked = 0
    for attempt in range(2):
        proc = subprocess.Popen([sys.executable, "-c", WRITER.format(repo=str(REPO), out=str(out))],
                                stdout=subprocess.PIPE, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 0.2 + 0.5 * rng.rand()
        while time.monotonic() < deadline:  # readers during the writes
            for n in sorted(existing_frames(out, "f_%04d.png"))[-3:]:
                img = seq.read_image(out / f"f_{n:04d}.png")
                assert np.abs(img - expected[n - 1].numpy()).max() <= 1 / 65535
                checked += 1
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    names = existing_frames(out, "f_%04d.png")
    assert names and checked > 0
    for n in names:  # after the kills: nothing half-written under a frame name
        img = seq.read_image(out / f"f_{n:04d}.png")
        assert np.abs(img - expected[n - 1].numpy()).max() <= 1 / 65535
    # resuming writes what is missing, leaves what is there, and sweeps the killed writer's temporaries
    save_image_sequence(expected, out, "f_%04d.png", bit_depth=16, skip_existing=True)
    assert existing_frames(out, "f_%04d.png") == set(range(1, 151))
    save_image_sequence(expected, out, "f_%04d.png", bit_depth=16)
    assert not list(out.glob(".*.tmp"))


def test_bundled_demo_shot_and_painted_keyframes_are_consistent():
    """The committed demo inputs are what scripts/wf_builders/keyframe.py makes: the shot's frames, the keyframes
    equal to their shot frames, and the painted keyframes equal to the hidden look applied to them."""
    pytest.importorskip("models.shots", reason="needs the keyframe engine (models/shots.py)")
    from scripts.wf_builders.keyframe import (DEMO_SHOT, INPUTS, KEYFRAMES, SHOT_FOLDER, SHOT_PATTERN,
                                              demo_input_paths, keyframe_file, painted_file, painted_look)

    assert all(p.is_file() for p in demo_input_paths())
    assert sum(p.stat().st_size for p in demo_input_paths()) < 3 * 2 ** 20
    frames, numbers = load_image_sequence(INPUTS / SHOT_FOLDER, SHOT_PATTERN)
    assert numbers == list(range(1, DEMO_SHOT["num_frames"] + 1))
    assert frames.shape == (DEMO_SHOT["num_frames"], DEMO_SHOT["size"], DEMO_SHOT["size"], 3)
    for n in KEYFRAMES:
        key = torch.from_numpy(seq.read_image(INPUTS / keyframe_file(n)))
        painted = torch.from_numpy(seq.read_image(INPUTS / painted_file(n)))
        assert torch.equal(key, frames[n - 1])
        assert (painted_look(key[None])[0] - painted).abs().max().item() <= 1.01 / 255
        assert (painted - key).abs().mean().item() > 0.05  # it is a different look


# ------------------------------------------------------------------------------------------ renderer helpers
def test_renderer_frame_specs_and_chunks():
    from scripts.render import make_chunks, parse_frames

    assert parse_frames("1-5,9,12-16:2") == [1, 2, 3, 4, 5, 9, 12, 14, 16]
    sequence = [1, 3, 5, 7, 9, 11, 13]  # a stepped shot
    chunks = make_chunks([1, 3, 5, 9, 11, 13], sequence, 2)  # 7 is already done
    assert [c.frames for c in chunks] == [[1, 3], [5], [9, 11], [13]]  # never spans a done frame


def test_renderer_chunks_load_exactly_their_frames(tmp_path):
    """Each chunk's first..last with the loader's step loads exactly the chunk's frames, whatever the step."""
    from scripts.render import make_chunks

    for n in list(range(1, 30)) + [40, 41, 45]:
        touch_png(tmp_path / f"f_{n:03d}.png")
    for first, step in ((None, 1), (6, 2), (3, 3), (None, 4)):
        sequence = [n for n, _ in list_image_sequence(tmp_path, "f_%03d.png", first, None, step)]
        pending = [f for f in sequence if f % 5]  # some frames done already
        for chunk in make_chunks(pending, sequence, 3):
            loaded = [n for n, _ in list_image_sequence(tmp_path, "f_%03d.png", chunk.frames[0], chunk.frames[-1], step)]
            assert loaded == chunk.frames, (first, step, chunk.frames, loaded)
