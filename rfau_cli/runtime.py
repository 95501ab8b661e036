"""Device, precision and the accelerate handle; seeding; peak memory; several processes.

Several processes (`torchrun --nproc_per_node N -m rfau_cli ...`, or `accelerate launch`):
every rank loads the data and the model and runs the method's setup (seeded, so the targets
agree: `check_ranks_agree` measures it), each step's batches are sharded over the ranks
(`shard`) and the gradients are all-reduced by DistributedDataParallel (accelerate's
`prepare`); only the main process audits and writes, the others wait for it.
"""

from __future__ import annotations

import contextlib
import os
import random
import resource
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rfau_cli.errors import InputError

MIB = 1024 * 1024
RSS_POLL_S = 0.05  # how often the memory sampler reads the resident set size


def make_accelerator(device: str, precision: str) -> Any:
    """auto: CUDA with bf16 when present, else CPU with fp32 (the values were checked by
    RuntimeSettings; whether CUDA is there is checked here)."""
    import torch
    from accelerate import Accelerator

    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise InputError("--device cuda: no CUDA device is available")
    use_cpu = device == "cpu" or (device == "auto" and not cuda)
    if precision == "auto":
        precision = "bf16" if not use_cpu else "fp32"
    local = _local_processes()
    if not use_cpu and local > (gpus := torch.cuda.device_count()):
        raise InputError(
            f"{local} processes on this machine but {gpus} CUDA device(s): NCCL needs one "
            "GPU per process; launch at most that many processes, or run them on the CPU with --device cpu"
        )
    mixed = "bf16" if precision == "bf16" else "no"
    if local == 1:
        _forget_other_accelerator(use_cpu, mixed)
    return Accelerator(cpu=use_cpu, mixed_precision=mixed, kwargs_handlers=[_ddp_kwargs()])


def _local_processes() -> int:
    """How many processes the launcher (torchrun, accelerate launch) started on this machine."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def _forget_other_accelerator(cpu: bool, mixed: str) -> None:
    """accelerate keeps one device and precision per process and refuses another: a second job
    in the same process (a notebook, the tests; seen on a GPU machine, a CUDA job then a CPU
    one) would fail. Without a launcher no process group hangs on that state, so drop it, and
    only when it differs: an equal one is still what the earlier job's objects read."""
    from accelerate.state import AcceleratorState, GradientState

    state = AcceleratorState._shared_state
    if not state:
        return
    if (getattr(state.get("device"), "type", None) == "cpu") == cpu and state.get("_mixed_precision") == mixed:
        return
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def _ddp_kwargs() -> Any:
    """How DistributedDataParallel wraps the model when there are several processes.

    DDP's defaults (find_unused_parameters=False, static_graph=False), measured on two CPU
    ranks with the digits ResNet: every registered method (and retrain) has all its trainable
    parameters in each step's graph, so ranks end with bit-identical weights; the fit time of
    RFAU was the same within noise with find_unused_parameters=True or static_graph=True (2.2-3.2
    s vs 2.3-2.7 s vs 2.5-3.7 s over two runs each), and static_graph would break methods
    whose forward passes differ between steps. A model whose forward skips some adapted module
    needs RFAU_DDP_FIND_UNUSED=1 (DDP then says so in its error).
    """
    from accelerate.utils import DistributedDataParallelKwargs

    return DistributedDataParallelKwargs(find_unused_parameters=os.environ.get("RFAU_DDP_FIND_UNUSED", "0") == "1")


def process_rank() -> int:
    """This process's global rank from the launcher's environment (0 without a launcher).

    Readable before the accelerator exists (progress bars are set up before loading).
    """
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def distributed_info(accelerator: Any) -> dict[str, Any]:
    """What the report records about the process group."""
    kind = accelerator.distributed_type
    return {"processes": int(accelerator.num_processes), "distributed_type": getattr(kind, "value", str(kind))}


def shard(rows: Any, accelerator: Any) -> Any:
    """This rank's part of a batch: rows[rank::world].

    Every rank takes every step on its slice and DDP averages the gradients, so a step sees the
    whole batch as one process would. A batch with fewer rows than ranks gives the ranks that
    would get nothing a copy of one of its rows (rank % len): never an empty batch, whose mean
    loss is NaN.
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    if world == 1 or len(rows) == 0:
        return rows
    if len(rows) < world:
        return rows[rank % len(rows) : rank % len(rows) + 1]
    return rows[rank::world]


class GradRouter:
    """Stands in for the model inside a TapReader once the model is wrapped by DDP.

    Forward passes with gradients (the student) go through the DDP wrapper, which is what
    all-reduces their gradients; forward passes without (the teacher under
    `disable_adapter()`, the per-epoch score) go to the plain module, so they start no
    collective (DDP broadcasts buffers at every forward it sees) and ranks may run different
    numbers of them (a teacher cache hits on one rank and not on another).
    """

    def __init__(self, wrapped: Any, plain: Any) -> None:
        self.wrapped, self.plain = wrapped, plain

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import torch

        return (self.wrapped if torch.is_grad_enabled() else self.plain)(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.plain, name)


def mean_over_ranks(values: dict[str, float], accelerator: Any) -> dict[str, float]:
    """The mean of each value over the processes (loss terms for the progress line and report)."""
    if accelerator.num_processes == 1 or not values:
        return values
    import torch

    keys = sorted(values)
    local = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=accelerator.device)
    total = accelerator.reduce(local, reduction="mean")
    return dict(zip(keys, total.tolist()))


def wait_and_share(accelerator: Any, value: Any) -> Any:
    """Main process: hand `value` to the others. Others: wait for the main one, return its value.

    A failure on the main process ends the run: the launcher (torchrun) stops the waiting ranks.
    """
    if accelerator.num_processes == 1:
        return value
    from accelerate.utils import broadcast_object_list

    box = [value if accelerator.is_main_process else None]
    broadcast_object_list(box, from_process=0)
    return box[0]


def settle_processes(accelerator: Any) -> None:
    """With several processes: stdout (results) only from the main one, and a clean stop.

    A launcher stops the other ranks with SIGTERM when one fails (torchrun does, also on
    Ctrl-C); turned into SystemExit, it unwinds `atomic_output_dir`, which then removes its
    temporary directory as after any other failure.
    """
    if accelerator.num_processes == 1:
        return
    import signal

    if not accelerator.is_main_process:
        sys.stdout.flush()
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (for the life of this process)

    def _stop(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _stop)


def check_ranks_agree(accelerator: Any, state: Any) -> float | None:
    """Largest relative difference between this rank's and the main rank's precomputed tensors.

    `state` is a method object after `setup`: its tensor and array attributes (targets,
    prototypes, masks; lists of them too) are summed in float64 (sum and sum of absolute
    values) on every rank and compared with the main rank's sums. Setup is seeded and sees the
    same rows on every rank, so this is 0 on CPUs; GPU kernels may differ in the last bits.
    Returns None with one process.
    """
    if accelerator.num_processes == 1:
        return None
    import numpy as np
    import torch
    from accelerate.utils import gather_object

    sums: list[float] = []
    for name in sorted(vars(state)):
        value = getattr(state, name)
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            if isinstance(item, torch.Tensor):
                item = item.detach().double().cpu().numpy()
            if isinstance(item, np.ndarray) and item.dtype.kind in "biuf":
                item = item.astype(np.float64)
                sums += [float(item.sum()), float(np.abs(item).sum())]
    every = gather_object([sums])
    main = np.asarray(every[0], dtype=np.float64)
    worst = 0.0
    for other in every[1:]:
        other = np.asarray(other, dtype=np.float64)
        if other.shape != main.shape:
            return float("inf")
        worst = max(worst, float((np.abs(other - main) / np.maximum(np.abs(main), 1e-12)).max(initial=0.0)))
    return worst


def precision_name(accelerator: Any) -> str:
    return "bf16" if accelerator.mixed_precision == "bf16" else "fp32"


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def peak_memory() -> Iterator[Callable[[], dict[str, float]]]:
    """Measure the peak memory of a block, in MiB: the process's resident set and CUDA's.

    Yields a function that returns the peak so far (inside the block) or of the whole block
    (after it). `cpu_rss_mib` is the kernel's high-water mark (`ru_maxrss`) when the block
    raised it, else the largest resident set sampled during the block (Linux): `ru_maxrss` only
    grows within a process, so a later block (bench runs one method after another) would
    otherwise report the largest of all so far. `cuda_mib` only when CUDA is there.
    """
    import torch

    cuda = torch.cuda.is_available()
    statm = Path("/proc/self/statm")
    page_mib = os.sysconf("SC_PAGE_SIZE") / MIB if hasattr(os, "sysconf") else 0.0
    stop = threading.Event()
    sampled = [0.0]
    start_max_rss = _max_rss_mib()
    final: dict[str, float] = {}

    def sample() -> None:
        while True:
            with contextlib.suppress(OSError, ValueError, IndexError):
                sampled[0] = max(sampled[0], int(statm.read_text().split()[1]) * page_mib)
            if stop.wait(RSS_POLL_S):
                return

    def read() -> dict[str, float]:
        if stop.is_set():
            return dict(final)
        out: dict[str, float] = {}
        max_rss = _max_rss_mib()
        cpu = max_rss if max_rss > start_max_rss else sampled[0]
        if cpu > 0:
            out["cpu_rss_mib"] = round(cpu, 1)
        if cuda:
            out["cuda_mib"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
        return out

    sampler = threading.Thread(target=sample, daemon=True) if statm.exists() else None
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if sampler is not None:
        sampler.start()
    try:
        yield read
    finally:
        final.update(read())
        stop.set()
        if sampler is not None:
            sampler.join()


def _max_rss_mib() -> float:
    """The process's resident-set high-water mark (`ru_maxrss`: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / MIB if sys.platform == "darwin" else rss / 1024
