"""The one training loop every gradient-based method shares.

Each step pairs one forget batch with `retain_ratio` retain batches (drive="forget"), so
cost grows with |D_f| and not with |D|; retain-driven methods (fine-tuning baselines,
retraining) walk D_r instead and cycle through D_f. Runs through `accelerate`, so the same
code uses the CPU, a CUDA GPU in bf16, or several processes (every process takes every step
on its shard of the batches; DDP all-reduces the gradients).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import torch
from accelerate.utils import broadcast_object_list

from rfau_cli.errors import RunError
from rfau_cli.methods.base import FitContext, Method
from rfau_cli.runtime import GradRouter, mean_over_ranks, shard

EVAL_ROWS = 512  # forget rows scored for the per-epoch progress line
# Forget-driven methods draw their retain batches from a seeded pool of at most this many D_r
# rows, so that a run's cost does not grow with |D|: each new retain row costs an encoding and
# a teacher forward once, and without a pool a run on 32,000 rows met ~128 new rows a step
# (fit x2.0 from 2,000 to 32,000 rows, docs/performance.md). 4,096 rows hold a rank-8 adapter
# in place; the audit's D_r sample is drawn independently, so it checks rows outside the pool.
RETAIN_POOL = 4096


class _Cursor:
    """Endless shuffled walk over row indices, reshuffled after each pass.

    `peek` tells the rows of the next takes without consuming them (so that their encoding
    can be planned ahead); the permutations it needs are drawn early and used in turn, so
    the walk is the same whether or not anyone peeks.
    """

    def __init__(self, rows: np.ndarray, rng: np.random.Generator) -> None:
        self.rows, self.rng, self.order, self.pos = rows, rng, rng.permutation(rows), 0
        self.ahead: deque[np.ndarray] = deque()

    def peek(self, n: int) -> np.ndarray:
        """The next `n` rows that `take` will return."""
        out, have, i = [self.order[self.pos :]], len(self.order) - self.pos, 0
        while have < n:
            if i == len(self.ahead):
                self.ahead.append(self.rng.permutation(self.rows))
            out.append(self.ahead[i])
            have, i = have + len(self.ahead[i]), i + 1
        return np.concatenate(out)[:n]

    def take(self, n: int) -> np.ndarray:
        out = []
        while n > 0:
            if self.pos >= len(self.order):
                self.order = self.ahead.popleft() if self.ahead else self.rng.permutation(self.rows)
                self.pos = 0
            chunk = self.order[self.pos : self.pos + n]
            self.pos += len(chunk)
            n -= len(chunk)
            out.append(chunk)
        return np.concatenate(out)


def trainable_parameters(model: Any) -> list[Any]:
    return [p for p in model.parameters() if p.requires_grad]


def steps_per_epoch(method: Method, ctx: FitContext) -> int:
    """Optimizer steps per epoch (one per batch of the driving split); every process takes
    every step on its shard of the batches, so this is also each process's count."""
    driver = ctx.splits.forget if method.drive == "forget" else ctx.splits.retain
    full, rest = divmod(len(driver), ctx.settings.batch_size)
    if method.drop_small_last and full and rest < ctx.settings.batch_size / 2:
        return full  # the few rows left over are in other epochs' shuffles
    return max(1, math.ceil(len(driver) / ctx.settings.batch_size))


def epochs_to_run(method: Method, ctx: FitContext) -> int:
    """The epoch cap: the user's `--epochs` as given, or the method's default epochs raised
    when needed to reach the method's `min_steps`.

    An epoch over a small D_f is a single step or two (30 rows = 1 step at batch 32): too few
    for an adapter to move. Measured on an over-fitted digits ResNet forgetting 30 rows, 10
    steps left the loss-attack AUC at 0.64 (retrained model: 0.60), 50 steps reached 0.61.
    A user's explicit `--epochs` is never raised: it is what they asked for (the report's
    `training` block shows the steps it gave).
    """
    if ctx.settings.epochs_from_user:
        return ctx.settings.epochs
    # A method may default to another cap per mode (RFAUParams.sample_epochs: RFAU's sample mode
    # runs to convergence) and to a minimum of steps, per mode too (RFAUParams.sample_min_steps);
    # a method whose Params lack them has neither.
    default = int(getattr(ctx.params, f"{ctx.splits.by}_epochs", ctx.settings.epochs))
    min_steps = int(getattr(ctx.params, f"{ctx.splits.by}_min_steps", getattr(ctx.params, "min_steps", 0)))
    return max(default, math.ceil(min_steps / steps_per_epoch(method, ctx)))


def plan_epoch(method: Method, ctx: FitContext, order: np.ndarray, per_epoch: int, retain_cursor: _Cursor,
               forget_cursor: _Cursor) -> None:
    """Tell the input cache which batches this epoch's steps will ask for, in order, so that
    rows it does not hold are encoded ahead (DataLoader workers) while the model computes.

    Mirrors the step loop of `train` (same rows, same shards, same order); if the two ever
    differ, the cache encodes the unplanned batch in place: slower, never wrong.
    """
    if ctx.inputs is None:
        return
    s, acc, size = ctx.settings, ctx.accelerator, ctx.settings.batch_size
    n_retain = s.retain_ratio if method.uses_retain else 0
    chunks: list[np.ndarray] = []
    if method.drive == "forget":
        upcoming = retain_cursor.peek(per_epoch * n_retain * size)
        for i in range(per_epoch):
            chunks.append(shard(order[i * size : (i + 1) * size], acc))
            base = i * n_retain * size
            chunks.extend(shard(upcoming[base + r * size : base + (r + 1) * size], acc) for r in range(n_retain))
    else:
        upcoming = forget_cursor.peek(per_epoch * size) if method.uses_forget else None
        for i in range(per_epoch):
            if upcoming is not None:
                chunks.append(shard(upcoming[i * size : (i + 1) * size], acc))
            chunks.append(shard(order[i * size : (i + 1) * size], acc))
    ctx.inputs.plan(chunks)


def agreed_stop(ctx: FitContext, reason: str | None) -> str | None:
    """The main process's stop decision, on every process (they must stop together)."""
    acc = ctx.accelerator
    if acc.num_processes == 1:
        return reason

    box = [reason]
    broadcast_object_list(box, from_process=0)
    return box[0]


def train(method: Method, ctx: FitContext) -> dict[str, Any]:
    """Run `epochs` passes of the method's loss; returns a per-epoch history."""
    s = ctx.settings
    acc = ctx.accelerator
    params = trainable_parameters(ctx.model)
    if not params:
        raise RunError(f"method {method.name}: no trainable parameters")
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
    plain = ctx.model
    model, optimizer = acc.prepare(plain, optimizer)
    ctx.model = model
    if model is not plain:  # several processes: DDP all-reduces the gradients of forwards through it
        ctx.taps.model = GradRouter(model, plain)
    model.eval()  # normalization layers keep their statistics: merged == base + adapter
    forget, retain = ctx.splits.forget, ctx.splits.retain
    driver = forget if method.drive == "forget" else retain
    per_epoch = steps_per_epoch(method, ctx)
    epochs = epochs_to_run(method, ctx)
    pool = retain
    if method.drive == "forget" and len(retain) > RETAIN_POOL:
        pool = np.sort(ctx.rng.choice(retain, RETAIN_POOL, replace=False))
    retain_cursor = _Cursor(pool, ctx.rng)
    forget_cursor = _Cursor(forget, ctx.rng)
    history = ctx.history
    task = ctx.progress.add_task(f"{method.name}", total=epochs * per_epoch)
    step = 0
    stop_reason = None
    for epoch in range(epochs):
        order = ctx.rng.permutation(driver)
        plan_epoch(method, ctx, order, per_epoch, retain_cursor, forget_cursor)
        sums: dict[str, float] = {}
        for i in range(per_epoch):
            # Every process takes every step on its shard of each batch (cursors and orders are
            # seeded alike on all ranks, so the batches agree); DDP averages the gradients.
            rows = shard(order[i * s.batch_size : (i + 1) * s.batch_size], acc)
            if method.drive == "forget":
                f_batch = ctx.batch(rows)
                n_retain = s.retain_ratio if method.uses_retain else 0
                r_batches = [ctx.batch(shard(retain_cursor.take(s.batch_size), acc)) for _ in range(n_retain)]
            else:
                f_batch = ctx.batch(shard(forget_cursor.take(s.batch_size), acc)) if method.uses_forget else None
                r_batches = [ctx.batch(rows)]
            with acc.autocast():
                terms = method.loss(ctx, f_batch, r_batches, step)
            loss = terms["loss"]
            if not torch.isfinite(loss):
                raise RunError(f"{method.name}: loss became {loss.item()} at epoch {epoch + 1}, step {i + 1}")
            optimizer.zero_grad(set_to_none=True)
            acc.backward(loss)
            method.after_backward(ctx)
            optimizer.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            step += 1
            ctx.progress.advance(task)
        record = {"epoch": epoch + 1, **{k: v / per_epoch for k, v in mean_over_ranks(sums, acc).items()}}
        record["forget_acc"] = forget_accuracy(ctx)
        history.append(record)
        ctx.progress.log_epoch(method.name, record)
        stop_reason = agreed_stop(ctx, method.stop_reason(ctx, record))
        if stop_reason:
            ctx.progress.log(f"[bold]{method.name}[/] stopped after epoch {epoch + 1}: {stop_reason}")
            break
    ctx.progress.remove_task(task)
    if ctx.inputs is not None:
        ctx.inputs.close()
    ctx.model = acc.unwrap_model(model)
    ctx.taps.model = ctx.model
    return {
        "history": history,
        "epochs": len(history),
        "epochs_requested": s.epochs,
        "epochs_source": "user" if s.epochs_from_user else "method default",
        "epochs_cap": epochs,
        "epochs_run": len(history),
        "steps": step,
        "stop_reason": stop_reason or f"epochs cap ({epochs})",
        "trainable_parameters": sum(p.numel() for p in params),
    }


def forget_accuracy(ctx: FitContext) -> float:
    """Accuracy on (a fixed sample of) D_f, for the progress line.

    The student's logits on those rows are kept in `ctx.forget_eval`, so a method's stop rule
    (RFAU's margins) reads them instead of running the same forward pass again.
    """
    rows = ctx.splits.forget[:EVAL_ROWS]
    chunks = [rows[start : start + 256] for start in range(0, len(rows), 256)]
    if ctx.inputs is not None:
        ctx.inputs.plan(chunks)
    logits = []
    with torch.no_grad(), ctx.accelerator.autocast():
        for chunk in chunks:
            out, _ = ctx.student(ctx.batch(chunk))
            logits.append(out.float())
    scores = torch.cat(logits) if logits else torch.zeros((0, ctx.num_labels), device=ctx.device)
    ctx.forget_eval = (rows, scores)
    labels = torch.as_tensor(ctx.splits.labels[rows], device=scores.device)
    return int((scores.argmax(-1) == labels).sum()) / max(len(rows), 1)
