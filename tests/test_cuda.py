"""The CUDA path through the real CLI, where a GPU is. conftest.py hides the GPU from the rest of
the suite (its numbers are fp32-on-the-CPU numbers); these runs get it back, in processes of
their own. Skipped where there is none (CI); `benchmarks/gpu.sh` runs them on a GPU machine.

What a user on a GPU relies on: `--device auto` picks CUDA and bf16, the class is forgotten and the
others kept, the merged weights and base + adapter agree when loaded on the CPU, and a launch of
more processes than GPUs is one line, not an NCCL error after loading.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FORGET_CLASS, GPU_ENV_KEY
from test_distributed import _torchrun
from test_unlearn import _logits, _test_rows

TIMEOUT_S = 600


def _gpu_env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    visible = os.environ.get(GPU_ENV_KEY, "*")
    if visible == "*":
        env.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        env["CUDA_VISIBLE_DEVICES"] = visible
    return env


@pytest.fixture(scope="module")
def gpus() -> int:
    """How many GPUs the CLI sees once given them back; skips the module where none (asked
    without starting torch where no NVIDIA driver is installed)."""
    if not (Path("/dev/nvidiactl").exists() or shutil.which("nvidia-smi")):
        pytest.skip("no NVIDIA driver")
    probe = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.device_count())"], env=_gpu_env(),
                           capture_output=True, text=True, timeout=TIMEOUT_S)
    count = int(probe.stdout.strip() or 0) if probe.returncode == 0 else 0
    if count == 0:
        pytest.skip(f"no CUDA device ({probe.stderr.strip()[-200:]})")
    return count


def _unlearn(model: Path, digits: tuple[Path, Path], forget: Path, out: Path, *extra: object) -> dict:
    command = [sys.executable, "-m", "rfau_cli", "unlearn", "--model", model, "--data", digits[0], "--test-data",
               digits[1], "--forget", forget, "--out", out, "--quiet", "--json", *extra]
    run = subprocess.run(list(map(str, command)), env=_gpu_env(), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-4000:]
    return json.loads(run.stdout)


def _test_logits(model_dir: Path, test: Path, adapter: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Logits of every test image on the CPU in fp32, and the labels."""
    from peft import PeftModel
    from transformers import AutoModelForImageClassification

    model = AutoModelForImageClassification.from_pretrained(model_dir).eval()
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter).eval()
    pixels, labels = _test_rows(test)
    return _logits(model, pixels).numpy(), labels.numpy()


def test_auto_picks_cuda_and_bf16_and_the_class_is_forgotten(gpus, resnet_ckpt, digits, class_forget_file,
                                                            tmp_path) -> None:
    report = _unlearn(resnet_ckpt, digits, class_forget_file, tmp_path / "out", "--by", "class")
    assert (report["device"], report["precision"]) == ("cuda", "bf16")
    assert report["peak_memory_mib"]["cuda_mib"] > 0
    before, after = report["metrics"]["before"], report["metrics"]["after"]
    assert after["forget"]["acc"] <= 0.02
    assert after["test_retain"]["acc"] >= before["test_retain"]["acc"] - 0.02

    # The files, read back on the CPU in fp32: the class is gone, the others kept, and base +
    # adapter is the merged model.
    merged, labels = _test_logits(tmp_path / "out", digits[1])
    original, _ = _test_logits(resnet_ckpt, digits[1])
    adapted, _ = _test_logits(resnet_ckpt, digits[1], adapter=tmp_path / "out" / "adapter")
    forgotten = labels == FORGET_CLASS
    assert (merged.argmax(-1)[forgotten] == FORGET_CLASS).mean() <= 0.02
    kept = (merged.argmax(-1) == labels)[~forgotten].mean()
    assert kept >= (original.argmax(-1) == labels)[~forgotten].mean() - 0.02
    np.testing.assert_allclose(adapted, merged, atol=1e-4)


def test_sample_forgetting_in_bf16_and_fp32(gpus, resnet_ckpt, digits, sample_forget_file, tmp_path) -> None:
    for precision in ("bf16", "fp32"):
        report = _unlearn(resnet_ckpt, digits, sample_forget_file, tmp_path / precision, "--device", "cuda",
                          "--precision", precision)
        assert (report["device"], report["precision"]) == ("cuda", precision)
        before, after = report["metrics"]["before"], report["metrics"]["after"]
        assert after["forget"]["conf"] < before["forget"]["conf"], precision
        assert after["test"]["acc"] >= before["test"]["acc"] - 0.02, precision


def test_more_processes_than_gpus_is_refused_before_any_work(gpus, resnet_ckpt, digits, class_forget_file,
                                                             tmp_path) -> None:
    out = tmp_path / "out"
    run = _torchrun("unlearn", "--model", resnet_ckpt, "--data", digits[0], "--test-data", digits[1], "--forget",
                    class_forget_file, "--by", "class", "--out", out, "--device", "cuda", nproc=gpus + 1,
                    env=_gpu_env())
    assert run.returncode != 0
    assert f"{gpus + 1} processes on this machine but {gpus} CUDA device(s)" in run.stderr, run.stderr[-4000:]
    assert list(tmp_path.iterdir()) == []
