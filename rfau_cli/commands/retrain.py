"""`rfau retrain`: the reference every unlearning method is judged against.

The same architecture is trained on D_r only, with plain cross-entropy, either from scratch
(fresh weights built from the checkpoint's own config, seeded) or from a given initial
checkpoint (`--init`, e.g. the pre-trained body with a fresh head that the original model was
fine-tuned from). It runs through `run_unlearn` with its own `Method`, so loading, progress,
outputs (merged weights + report.json), errors and the before/after audit are exactly those of
`rfau unlearn`; the report says `"command": "retrain"` and `"method": "retrain"`.

Decisions (DESIGN.md leaves them open):
- Defaults (30 epochs over D_r, lr 3e-3, batch 64) are those `toy.train_digits_model` trains
  the digits models with, so the reference is trained like the original. Fine-tuned text
  models need `--init` and their own recipe (MiniLM in toy.py: `--epochs 3 --lr 5e-5
  --batch-size 16`).
- Unlike unlearning methods, retraining puts the model in train mode for its forward passes
  (batch-norm uses batch statistics and updates its running statistics, dropout is on), as
  the original training did; the loop's per-epoch progress line still scores D_f in eval mode,
  so no forgotten row ever touches the running statistics.
- `--by sample` still needs `--test-data` (the check of `run_unlearn` is kept): a reference
  without non-members has no test accuracy or MIA numbers to compare methods with.
- Retrain is not in the method registry: it is the reference, not an unlearning method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rfau_cli.errors import InputError
from rfau_cli.methods.base import FitContext, Method
from rfau_cli.settings import RetrainConfig, UnlearnConfig

SCRATCH = "scratch"


class Retrain(Method):
    """Cross-entropy on D_r from re-initialised (or `--init`) weights; D_f is never read."""

    name: ClassVar[str] = "retrain"
    uses_lora: ClassVar[bool] = False
    drive: ClassVar[str] = "retain"
    uses_forget: ClassVar[bool] = False
    drop_small_last: ClassVar[bool] = True  # batch-norm trains here: no 4-row batches
    default_epochs: ClassVar[int] = 30
    default_lr: ClassVar[float] = 3e-3

    def __init__(self, init: Path | None = None) -> None:
        self.init = init

    def setup(self, ctx: FitContext) -> None:
        """Overwrite every weight and buffer of the loaded model with the starting point."""
        start = self._initial_model(ctx)
        try:
            ctx.model.load_state_dict(start.state_dict(), strict=True)
        except RuntimeError as err:
            raise InputError(f"--init {self.init}: weights do not fit the model ({str(err).splitlines()[0]})") from None
        ctx.state["init"] = SCRATCH if self.init is None else str(self.init)

    def _initial_model(self, ctx: FitContext) -> Any:
        import torch

        from rfau_cli.checkpoint import load_model, resolve_checkpoint, weights_sha256

        if self.init is not None:
            ref = resolve_checkpoint(self.init)
            ctx.state["init_sha256"] = weights_sha256(ref)
            return load_model(ref)
        from rfau_cli.toy import fresh_model

        # Seeded so that one seed gives one reference; the global RNG state is restored.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.settings.seed)
            return fresh_model(ctx.model.config)

    def loss(
        self, ctx: FitContext, forget: dict[str, Any] | None, retain: list[dict[str, Any]], step: int
    ) -> dict[str, Any]:
        import torch

        batch = retain[0]
        ctx.model.train()  # batch statistics and dropout, as in the original training
        try:
            logits = ctx.logits(batch)
        finally:
            ctx.model.eval()  # the loop scores D_f between epochs: never in train mode
        loss = torch.nn.functional.cross_entropy(logits, batch["labels"])
        return {"loss": loss}


def run_retrain(cfg: RetrainConfig) -> dict[str, Any]:
    """Retrain on D_r and return the report (also written to `out/report.json`).

    Raises:
        InputError: bad input (as `rfau unlearn`), or an `--init` checkpoint whose
            architecture or label count differs from `--model`'s.
    """
    from rfau_cli.commands.unlearn import run_unlearn

    if cfg.init is not None:
        _check_init(cfg.model, cfg.init)
    unlearn_cfg = UnlearnConfig(
        model=cfg.model,
        out=cfg.out,
        data=cfg.data,
        method=Retrain.name,
        save="merged",
        hparams=cfg.hparams,
        runtime=cfg.runtime,
    )
    return run_unlearn(unlearn_cfg, method=Retrain(cfg.init), command="retrain")


def _check_init(model: Path, init: Path) -> None:
    from rfau_cli.checkpoint import resolve_checkpoint

    ref, start = resolve_checkpoint(model), resolve_checkpoint(init)
    if start.adapter_dir is not None:
        raise InputError(f"--init {init} is an adapter directory; give a full checkpoint")
    if (start.architecture, start.num_labels) != (ref.architecture, ref.num_labels):
        raise InputError(
            f"--init {init} is a {start.architecture} with {start.num_labels} labels; --model is a "
            f"{ref.architecture} with {ref.num_labels}: retraining needs the same architecture"
        )
