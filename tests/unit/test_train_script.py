"""scripts/train.py as a farm job runs it: SIGTERM saves the state at the current iteration and exits 130, the same
command with --continue_train carries on, bad data exits 2 (one tiny CycleGAN, a few seconds)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image


REPO = Path(__file__).resolve().parents[2]


def _cmd(data, ck, *extra):
    return [sys.executable, str(REPO / "scripts" / "train.py"), "cyclegan", str(data), "--name", "job",
            "--checkpoints_dir", str(ck), "--netG", "resnet_1blocks", "--ngf", "4", "--ndf", "4", "--load_size",
            "36", "--crop_size", "32", "--torch_threads", "1", "--print_freq", "1000", "--display_freq", "1000",
            "--quiet", *extra]


def test_sigterm_saves_state_and_continue_train_resumes(tmp_path):
    rng = np.random.default_rng(0)
    for side in "AB":
        (tmp_path / "data" / f"train{side}").mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(
                tmp_path / "data" / f"train{side}" / f"{i}.png")
    ck = tmp_path / "ck"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_cmd(tmp_path / "data", ck, "--n_epochs", "500", "--n_epochs_decay", "500"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=str(tmp_path))
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "End of epoch 2 " in line:
            proc.send_signal(signal.SIGTERM)
            break
    out, _ = proc.communicate(timeout=120)
    lines.append(out)
    assert proc.returncode == 130, "".join(lines)
    state = torch.load(ck / "job" / "train_state.pt", weights_only=True)
    stopped_at = state["total_iters"]
    assert stopped_at >= 4 and state["trainer"]["steps"] == stopped_at
    assert (ck / "job" / "latest_net_G_A.pth").is_file()
    # the same command again, in this process (cheaper than another interpreter)
    from scripts.train import main

    handlers = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        rc = main(_cmd(tmp_path / "data", ck, "--n_epochs", "500", "--n_epochs_decay", "500", "--continue_train",
                       "--max_iters", str(stopped_at + 3))[2:])
        assert rc == 0
        state = torch.load(ck / "job" / "train_state.pt", weights_only=True)
        assert state["total_iters"] == stopped_at + 3 and state["trainer"]["steps"] == stopped_at + 3
        assert main(_cmd(tmp_path / "nowhere", ck)[2:]) == 2
    finally:
        signal.signal(signal.SIGINT, handlers[0])
        signal.signal(signal.SIGTERM, handlers[1])
