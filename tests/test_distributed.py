"""Several processes for real: `torchrun --nproc_per_node 2 -m rfau_cli unlearn` on two CPU
ranks (gloo) forgets like one process, and only the main rank writes and prints.

`python -m torch.distributed.run` is the module behind the `torchrun` script (same flags), so
the test does not depend on where the venv's scripts are on PATH.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
from conftest import invoke

TIMEOUT_S = 300  # the torchrun part takes 15-25 s on two busy cores; a hang must fail, not block CI


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(*args: object, nproc: int = 2, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {
        **(os.environ if env is None else env), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
    }
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", str(nproc),
        "--master-addr", "127.0.0.1", "--master-port", str(_free_port()), "-m", "rfau_cli", *map(str, args),
    ]
    # A session of its own, so that a hang kills torchrun and both ranks, not torchrun alone.
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def test_two_processes_forget_a_class_like_one(resnet_ckpt, digits, class_forget_file, tmp_path, cli) -> None:
    common = ("--model", resnet_ckpt, "--data", digits[0], "--test-data", digits[1], "--forget", class_forget_file,
              "--by", "class", "--json")
    one = invoke(cli, "unlearn", *common, "--quiet", "--out", tmp_path / "one")
    assert one.exit_code == 0, one.stderr
    single = json.loads(one.stdout)

    parent = tmp_path / "two"
    parent.mkdir()
    run = _torchrun("unlearn", *common, "--out", parent / "out")
    assert run.returncode == 0, run.stderr[-4000:]
    # One JSON document on stdout: the other rank prints nothing.
    report = json.loads(run.stdout)
    # Exactly one output, complete, and no temporary directory left by either rank.
    assert [p.name for p in parent.iterdir()] == ["out"]
    assert {"model.safetensors", "report.json", "config.json", "adapter"} <= {
        p.name for p in (parent / "out").iterdir()
    }
    assert json.loads((parent / "out" / "report.json").read_text()) == report
    # Progress from the main rank only: one line per epoch.
    assert run.stderr.count("rfau epoch 1:") == 1, run.stderr[-4000:]

    assert (report["processes"], report["distributed_type"]) == (2, "MULTI_CPU")
    assert (single["processes"], single["distributed_type"]) == (1, "NO")
    # Every rank takes every step: as many steps as one process, and the same setup targets.
    assert report["training"]["steps"] == single["training"]["steps"]
    assert report["training"]["ranks_setup_max_rel_diff"] == 0.0
    two_after, one_after = report["metrics"]["after"], single["metrics"]["after"]
    for after in (one_after, two_after):
        assert after["forget"]["acc"] <= 0.02
        assert after["test_forget"]["acc"] <= 0.02
    # The same forgetting: half-batch shards + averaged gradients = the one-process step.
    assert abs(two_after["forget"]["conf"] - one_after["forget"]["conf"]) <= 0.01
    assert abs(two_after["test_retain"]["acc"] - one_after["test_retain"]["acc"]) <= 0.01


def test_shard_splits_every_batch_over_the_ranks() -> None:
    from rfau_cli.runtime import shard

    rows = np.arange(7)
    parts = [shard(rows, SimpleNamespace(num_processes=2, process_index=r)) for r in (0, 1)]
    assert [p.tolist() for p in parts] == [[0, 2, 4, 6], [1, 3, 5]]
    # Fewer rows than ranks: no rank gets an empty batch (its mean loss would be NaN).
    few = [shard(np.array([5]), SimpleNamespace(num_processes=3, process_index=r)).tolist() for r in range(3)]
    assert few == [[5], [5], [5]]
    assert shard(rows, SimpleNamespace(num_processes=1, process_index=0)) is rows


def test_non_main_ranks_stay_quiet(monkeypatch) -> None:
    from rfau_cli.progress import Progress

    monkeypatch.setenv("RANK", "1")
    assert Progress(quiet=False).quiet
    monkeypatch.setenv("RANK", "0")
    assert not Progress(quiet=False).quiet


def test_more_processes_than_gpus_is_one_line_before_nccl(monkeypatch) -> None:
    """Two processes sharing one GPU fail inside NCCL ('invalid usage', seen on an H200) after
    loading everything; rfau says so first, and how to run them (tests/test_cuda.py: for real)."""
    import pytest
    import torch

    from rfau_cli.errors import InputError
    from rfau_cli.runtime import make_accelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    for device in ("auto", "cuda"):
        with pytest.raises(InputError, match=r"2 processes on this machine but 1 CUDA device.*--device cpu"):
            make_accelerator(device, "auto")
