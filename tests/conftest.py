"""Shared fixtures: tiny randomly initialised models (fixed seeds) and sample images."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from dreamvideo.testing import tiny_dreamvideo_pipeline, tiny_t2v_pipeline

torch.set_num_threads(int(os.environ.get("DREAMVIDEO_TEST_THREADS", "2")))


@pytest.fixture(scope="session")
def t2v():
    return tiny_t2v_pipeline("clip", seed=0)


@pytest.fixture(scope="session")
def pipe():
    """Branch injections perturbed away from zero so the image visibly matters."""
    return tiny_dreamvideo_pipeline("clip", seed=0, randomize_branch=True, default_num_frames=4)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    """A saved tiny DreamVideo folder with the MiniLM tokenizer (the default model's text stack)."""
    path = tmp_path_factory.mktemp("models") / "tiny-dreamvideo"
    tiny_dreamvideo_pipeline("bert", seed=1, randomize_branch=True, default_num_frames=4).save_pretrained(
        path
    )
    return path


@pytest.fixture(scope="session")
def photo(tmp_path_factory) -> str:
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("images") / "photo.png"
    y, x = np.mgrid[0:96, 0:80]
    array = np.stack([x * 3, y * 2, (x + y) % 255], -1) + rng.integers(0, 30, (96, 80, 3))
    Image.fromarray(np.clip(array, 0, 255).astype(np.uint8)).save(path)
    return str(path)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(capsys, *args):
    """`dreamvideo ARGS` in process: (exit code, stdout, stderr)."""
    from dreamvideo.cli import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# The end of every two-process script: both ranks leave only once both are past their last
# collective. Leaving as soon as one rank's barrier returns let it close its gloo sockets while
# the other still read from them ("Connection closed by peer" in gloo's TCP transport); and
# gloo's own teardown at interpreter exit may abort ("terminate called without an active
# exception"), so the ranks leave with os._exit once the files say both are done.
_LEAVE_TOGETHER = """
import pathlib as _pathlib, time as _time
_done = _pathlib.Path({folder!r})
(_done / f"done-{{dist.get_rank()}}").touch()
_deadline = _time.monotonic() + 120
while len(list(_done.glob("done-*"))) < dist.get_world_size() and _time.monotonic() < _deadline:
    _time.sleep(0.05)
os._exit(0)
"""


def run_in_two_processes(body: str, tmp_path) -> subprocess.CompletedProcess:
    """`body` (Python that imports os and torch.distributed as dist) under torchrun: 2 CPU
    processes with gloo, as `accelerate launch` runs them. The rendezvous takes a free port
    (`--standalone`: no fixed port for two test runs to fight over), gloo stays on the loopback
    interface, and the ranks leave together (above)."""
    folder = tmp_path / "ranks-done"
    folder.mkdir()
    script = tmp_path / "two_processes.py"
    script.write_text(body + _LEAVE_TOGETHER.format(folder=str(folder)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    result = subprocess.run([*command, str(script)], capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def train_in_two_processes(config, tmp_path) -> None:
    """`train(config)` in two processes; asserts that both ranks finish with the same weights."""
    result = run_in_two_processes(
        f"""
import os
import torch.distributed as dist
from dreamvideo.training.config import load_config
from dreamvideo.training.trainer import train
summary = train(load_config({str(config)!r}))
digests = [None] * dist.get_world_size()
dist.all_gather_object(digests, summary["param_digest"])
assert dist.get_world_size() == 2 and len(set(digests)) == 1, digests
print("RANKS-EQUAL", dist.get_rank(), summary["step"], flush=True)
""",
        tmp_path,
    )
    assert result.stdout.count("RANKS-EQUAL") == 2
