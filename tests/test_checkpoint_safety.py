"""Checkpoints: the shipped ones load without unpickling; Ctrl-C during training saves a resumable
checkpoint; --checkpoint-every; a directory given as a checkpoint is named."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("sb3_contrib")
import torch  # noqa: E402

from mcm_gym.cli import main  # noqa: E402
from mcm_gym.learn.checkpoints import is_shipped, load_model, read_sidecar, resolve_checkpoint  # noqa: E402

TINY_CFG = ("instances: {{graphs: [tiny://chain-v1, tiny://diamond-v1], hardware: [ring-4]}}\nenv: {{k_max: 4}}\n"
            "total_timesteps: {steps}\nppo: {{n_steps: 64, batch_size: 32, n_epochs: 1}}\neval: {{every: 0}}\n"
            "checkpoint_every: 0\npolicy: {{extractor: {{hidden: 8, layers: 1}}}}\nseed: 0\n")


def test_shipped_checkpoint_loads_without_unpickling(monkeypatch) -> None:
    path = resolve_checkpoint("pretrained-v2")
    assert is_shipped(path)
    full = load_model(path, weights_only=False)

    def no_unpickling(*args, **kwargs):
        raise AssertionError("the shipped checkpoint must load without unpickling")

    import stable_baselines3.common.save_util as save_util

    monkeypatch.setattr(save_util, "load_from_zip_file", no_unpickling)
    monkeypatch.setattr("pickle.loads", no_unpickling)
    safe = load_model(path)
    a, b = full.policy.state_dict(), safe.policy.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert safe.policy_kwargs["features_extractor_kwargs"] == full.policy_kwargs["features_extractor_kwargs"]


def test_a_directory_is_not_a_checkpoint(tmp_path: Path, capsys) -> None:
    assert main(["partition", "--graph", "tiny://chain-v1", "--hardware", "ring-4", "--policy", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is a directory; give a checkpoint .zip" in err and "Traceback" not in err


def test_checkpoint_every_flag(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY_CFG.format(steps=128))
    assert main(["train", str(cfg), "--out", str(tmp_path / "run"), "--no-progress", "--checkpoint-every", "64"]) == 0
    steps = {int(p.stem.removeprefix("step_")) for p in (tmp_path / "run" / "checkpoints").glob("step_*.zip")}
    assert 64 in steps and steps <= {64, 128}, steps  # the last one may be final.zip alone


def test_ctrl_c_during_training_saves_a_resumable_checkpoint(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(TINY_CFG.format(steps=1_000_000))
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "from mcm_gym.cli import main; sys.exit(main(sys.argv[1:]))",  # a background job inherits SIG_IGN
           "train", str(cfg), "--out", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    log = out / "train_log.json"
    deadline = time.monotonic() + 120

    def stepped() -> bool:  # PPO has finished a rollout (the log is written atomically)
        try:
            return json.loads(log.read_text())["timesteps"] > 0
        except (FileNotFoundError, ValueError, KeyError):
            return False

    try:
        while time.monotonic() < deadline and not stepped():
            time.sleep(0.2)
        assert log.exists(), "training never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:  # a child that did not stop would train its million steps on after the test
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    saved = out / "interrupted.zip"
    assert saved.exists() and "Resume with" in err and f"--resume {saved}" in err and "Traceback" not in err
    done = read_sidecar(saved)["timesteps"]
    assert done > 0
    cfg.write_text(TINY_CFG.format(steps=done + 64))
    assert main(["train", str(cfg), "--out", str(out), "--no-progress", "--resume", str(saved)]) == 0
    assert read_sidecar(out / "final.zip")["timesteps"] >= done + 64
