"""Test-row margins of other models of the original's recipe, for sample mode's targets
(`--set test_margins_from=DIR,...`).

Sample mode maps each forgotten row onto the margins the *original* gives its test rows
(margin_targets.py): what a model that never saw the row would make of it. The original is one
draw of its recipe, though. A draw less accurate than its retrains (the bench's weakest
originals: 1.9-2.4 points of test accuracy below them) asks the forgotten rows to be as wrong
as it is on unseen data, more than a retrain is, and the pull costs it test accuracy besides; a
draw surer than its retrains asks too little. Retrains of an earlier request (`rfau retrain`,
`rfau bench`) are models of the same recipe trained without some rows: their margins on the
test rows say what a retrain does on unseen rows, whichever rows it lost. Given those, the
targets take the forgotten rows' percentiles among the original's members (its own scale of
how well it knows a row) to the peers' test margins instead of the original's.

The peers must be classifiers with the original's classes; they are scored on the run's own
test rows, once, before the fit. With `follow_test_rows` (a concentrated request's targets
recomputed from the unlearned model's own test rows after each epoch) they set the first
epoch's targets only.

Measured (docs/results.md, "Peers of the recipe"): with the retrains of another request of the
same model as peers, RFAU's avg gap to the draw's own retrains fell on 97 of the bench's 150
digits draws (0.23 +- 0.06 pp), most on originals that are weaker or stronger draws than their
peers; the big ResNet's weakest original (6.5% test errors against its retrains' 4.1%) went from
3.3 to 1.9 pp. Not the default: a request does not come with peers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from rfau_cli.errors import InputError


def peer_paths(text: str) -> list[Path]:
    """The comma-separated checkpoint paths of `test_margins_from` ('' -> none)."""
    return [Path(p.strip()).expanduser() for p in text.split(",") if p.strip()]


def check_peers(text: str, id2label: dict[int, str], num_labels: int) -> list[Any]:
    """Each path a classifier checkpoint with the original's classes (CheckpointRef each).

    Raises:
        InputError: a path that is not a checkpoint (resolve_checkpoint's messages), or one whose
            classes differ from the original's.
    """
    from rfau_cli.checkpoint import resolve_checkpoint

    refs = []
    for path in peer_paths(text):
        try:
            ref = resolve_checkpoint(path)
        except InputError as err:
            raise InputError(f"--set test_margins_from: {err}") from None
        if ref.num_labels != num_labels or {int(k): v for k, v in ref.id2label.items()} != dict(id2label):
            why = (
                f"{ref.num_labels} labels against {num_labels}"
                if ref.num_labels != num_labels
                else "the same number of labels, named or ordered otherwise"
            )
            raise InputError(
                f"--set test_margins_from: {path} has other classes than the model ({why}): it must be a model of "
                "the same task"
            )
        refs.append(ref)
    return refs


def peer_test_margins(ctx: Any, refs: list[Any], score: Any) -> np.ndarray:
    """Every peer's margins on the run's test rows, pooled (one distribution of unseen-row margins).

    `score(ctx, rows, test, forward)` is RFAU's batched scorer; each peer is loaded on the run's
    device, scored and dropped before the next."""
    from rfau_cli.checkpoint import load_model
    from rfau_cli.methods.margin_targets import margins

    rows = np.arange(len(ctx.splits.test_labels))
    out = []
    for ref in refs:
        model = load_model(ref).to(ctx.device)
        logits = score(ctx, rows, True, lambda batch, m=model: (ctx.logits(batch, m), None))
        out.append(margins(logits, ctx.splits.test_labels)[0])
        del model
    return np.concatenate(out)


def unseen_rows(
    original: np.ndarray, references: list[np.ndarray], test_labels: np.ndarray, paths: list[str]
) -> dict[str, Any] | None:
    """What `rfau bench` says of the original's draw: its test error and median test margin against
    its references' (pooled), and the references' checkpoints to pass on as `test_margins_from`.

    `original` and each of `references` are the test rows' logits or log-probabilities (a margin is
    the same in both). None without a reference."""
    from rfau_cli.methods.margin_targets import margins

    if not references or not len(test_labels):
        return None
    own = margins(original, test_labels)[0]
    peers = np.concatenate([margins(r, test_labels)[0] for r in references])
    error, peer_error = float(np.mean(own <= 0)), float(np.mean(peers <= 0))
    # One binomial standard error of the references' error rate on these rows: the verdict's tolerance.
    spread = float(np.sqrt(max(peer_error * (1 - peer_error), 1e-12) / len(test_labels)))
    return {
        "test_error": round(error, 4),
        "median_margin": round(float(np.median(own)), 4),
        "references_test_error": round(peer_error, 4),
        "references_median_margin": round(float(np.median(peers)), 4),
        "standard_error": round(spread, 4),
        "paths": paths,
    }


def describe_unseen(block: dict[str, Any] | None) -> str | None:
    """One line for bench.md and the terminal: how the original's draw compares with its references'
    on unseen rows, and the setting that passes the references on to later requests."""
    if not block:
        return None
    diff = block["test_error"] - block["references_test_error"]
    if abs(diff) <= block["standard_error"]:
        verdict = "as many as its references (within one standard error)"
    elif diff > 0:
        verdict = "a weaker draw of its recipe, whose own test rows ask too much of the forgotten ones"
    else:
        verdict = "a stronger draw of its recipe, whose own test rows ask too little of the forgotten ones"
    text = (
        f"Unseen rows: the original gets {100 * block['test_error']:.1f}% of the test rows wrong (median margin "
        f"{block['median_margin']:.2f} logits), its references {100 * block['references_test_error']:.1f}% "
        f"({block['references_median_margin']:.2f}): {verdict}."
    )
    judges = block.get("peers_among_references") or []
    if judges:
        text += (
            f" RFAU took its test margins from {len(judges)} of these references (`test_margins_from`): its gap is "
            "judged against models that set its targets, which a request does not come with; give it the retrains "
            "of another request."
        )
    paths = block.get("paths") or []
    if paths and not any("," in p for p in paths):
        text += (
            " Sample mode maps forgotten rows onto the original's test margins; for later requests to this model, "
            f"`--set test_margins_from={','.join(paths)}` maps them onto these references' instead."
        )
    return text
