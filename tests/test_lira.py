"""LiRA (`--attacks ...,lira`): the math on planted numbers, then the attack end to end on a
memorising digits model, the reference cache, bad flags, and the bench's LiRA columns."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import invoke

from rfau_cli import lira as L
from rfau_cli import toy

REFERENCES = 4
RETRAIN_EPOCHS = 60  # LiRA's references: 6 s for four on 2 shared cores


# ---- the pure part -----------------------------------------------------------------------------


def test_logit_confidence_is_log_odds_and_finite_at_saturation():
    probs = np.array([[0.7, 0.2, 0.1], [0.05, 0.9, 0.05], [1.0, 0.0, 0.0]])
    with np.errstate(divide="ignore"):
        log_probs = np.log(probs)
    phi = L.logit_confidence(log_probs, np.array([0, 1, 0]))
    assert phi[:2] == pytest.approx([np.log(0.7 / 0.3), np.log(0.9 / 0.1)])
    assert phi[2] == L.LOGIT_CLIP  # p_y = 1 exactly: clipped, not inf


def test_membership_is_balanced_and_seeded():
    member = L.membership(5, 200, seed=3)
    assert (member.sum(0) == 2).all()  # every candidate in floor(5/2) references
    assert np.array_equal(member, L.membership(5, 200, seed=3))
    assert not np.array_equal(member, L.membership(5, 200, seed=4))


def test_online_lira_finds_planted_members_and_fpr_holds():
    """Candidates whose in-models score higher than their out-models; the target trained on the
    first half. Per-candidate difficulty (offsets) hides them from a global threshold."""
    rng = np.random.default_rng(0)
    n_ref, n = 8, 4000
    member = L.membership(n_ref, n, seed=0)
    difficulty = rng.normal(0, 3, n)
    refs = difficulty + 2.0 * member + rng.normal(0, 0.5, (n_ref, n))
    target_in = np.arange(n) < n // 2
    target = difficulty + 2.0 * target_in + rng.normal(0, 0.5, n)
    fits = L.fit_gaussians(refs, member)
    assert fits.global_variance  # 4 in- and 4 out-models a candidate: below PER_EXAMPLE_MIN
    scores = L.likelihood_ratio(target, fits, online=True)
    m = L.attack_metrics(scores[target_in], scores[~target_in])
    assert m["auc"] > 0.95 and m["tpr_at_1pct_fpr"] > 0.5
    assert m["flagged_at_1pct_fpr"] == pytest.approx(m["tpr_at_1pct_fpr"])
    # A global threshold on phi itself is close to chance here.
    assert L.attack_metrics(target[target_in], target[~target_in])["auc"] < 0.75
    # On non-members only, the 1% threshold of one half flags about 1% of the other half.
    null = scores[~target_in]
    assert np.mean(null[1::2] > L.threshold_at_fpr(null[::2], 0.01)) < 0.03
    offline = L.likelihood_ratio(target, fits, online=False)
    assert L.attack_metrics(offline[target_in], offline[~target_in])["auc"] > 0.9


def test_many_references_fit_per_example_variances():
    member = L.membership(40, 10, seed=0)
    scores = np.random.default_rng(0).normal(0, np.arange(1, 11), (40, 10))
    fits = L.fit_gaussians(scores, member)
    assert not fits.global_variance
    assert fits.std_out[-1] > 3 * fits.std_out[0]


# ---- end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def noisy(digits, tmp_path_factory) -> SimpleNamespace:
    """A ResNet trained 150 epochs on 300 digits rows, a third of whose 30 forgotten rows carry a
    wrong label (a cleaning request), and one retrained without those 30 rows.

    Mislabelled rows are what a network memorises (nothing else predicts their label), and a
    global threshold cannot see it: the model is as sure of them as of clean unseen digits.
    Measured: loss attack TPR at 1% FPR 0.0, LiRA (4 references, 60 epochs) 0.37 on the
    original and 0.0 on the retrained model.
    """
    import datasets

    root = tmp_path_factory.mktemp("lira")
    table = datasets.load_from_disk(str(digits[0]))
    rng = np.random.default_rng(0)
    sub = table.select(np.sort(rng.choice(len(table), 300, replace=False)).tolist())
    forget = np.sort(rng.choice(300, 30, replace=False))
    labels = np.array(sub["label"])
    wrong = forget[::3]
    labels[wrong] = (labels[wrong] + rng.integers(1, 10, len(wrong))) % 10
    sub.remove_columns("label").add_column("label", labels.tolist()).save_to_disk(str(root / "train"))
    (root / "forget.txt").write_text("\n".join(map(str, forget)) + "\n")
    retain = np.setdiff1d(np.arange(300), forget)
    return SimpleNamespace(
        train=root / "train",
        test=digits[1],
        forget=root / "forget.txt",
        original=toy.train_digits_model("resnet", root / "train", root / "original", epochs=150),
        retrained=toy.train_digits_model("resnet", root / "train", root / "retrained", epochs=150, rows=retain),
    )


def _audit(cli, noisy, model: Path, refs: Path, *extra: object):
    result = invoke(
        cli, "audit", "-m", model, "-d", noisy.train, "-f", noisy.forget, "--test-data", noisy.test,
        "--attacks", "svc,loss,lira", "--references", REFERENCES, "--retrain-epochs", RETRAIN_EPOCHS,
        "--reference-dir", refs, "--json", *extra,
    )
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


def test_lira_flags_memorised_rows_of_the_original_not_of_the_retrained(cli, noisy, tmp_path):
    refs, per_sample = tmp_path / "refs", tmp_path / "lira.csv"
    result, first = _audit(cli, noisy, noisy.original, refs, "--per-sample", per_sample)
    assert result.exit_code == 0, result.stderr
    lira, info = first["metrics"]["mia"]["lira"], first["lira"]
    assert info["mode"] == "online" and info["references"] == REFERENCES
    assert info["reused"] == [] and len(info["trained"]) == REFERENCES
    assert sorted(p.name for p in refs.iterdir()) == sorted(info["keys"])
    assert "LiRA (online): 4 reference models" in result.stderr  # the cost, said before training
    # Several times its FPR on the original; the loss attack sees nothing at that FPR.
    assert lira["tpr_at_1pct_fpr"] >= 0.2 and lira["auc"] > 0.7
    assert first["metrics"]["mia"]["loss_tpr_at_1pct_fpr"] < 0.05

    rows = list(csv.DictReader(per_sample.open()))
    sizes = info["candidates"]
    assert len(rows) == sizes["forget"] + sizes["retain"] + sizes["test"]
    forget_rows = [r for r in rows if r["split"] == "forget"]
    assert [int(r["row"]) for r in forget_rows] == sorted(int(x) for x in noisy.forget.read_text().split())
    flagged = np.mean([r["flagged"] == "True" for r in forget_rows])
    assert flagged == pytest.approx(lira["flagged_at_1pct_fpr"])
    test_flagged = np.mean([r["flagged"] == "True" for r in rows if r["split"] == "test"])
    assert test_flagged <= 0.01

    # The retrained model: the same references (reused, the report says so), D_f near 1%.
    result, retrained = _audit(
        cli, noisy, noisy.retrained, refs, "--require", "mia.lira.tpr_at_1pct_fpr<=0.04", "--quiet"
    )
    assert result.exit_code == 0, result.stderr
    assert retrained["lira"]["reused"] == info["keys"] and retrained["lira"]["trained"] == []
    assert retrained["metrics"]["mia"]["lira"]["tpr_at_1pct_fpr"] <= 0.04
    assert retrained["metrics"]["mia"]["lira"]["auc"] < lira["auc"] - 0.3

    # Same seed, same numbers; the gate on the original fails (exit 1).
    result, again = _audit(cli, noisy, noisy.original, refs, "--require", "mia.lira.tpr_at_1pct_fpr<=0.04", "-q")
    assert result.exit_code == 1
    assert again["metrics"]["mia"]["lira"] == lira and again["lira"]["reused"] == info["keys"]


@pytest.mark.parametrize(
    "args, message",
    [
        (("--attacks", "svc,lira", "--references", "1"), "--references must be at least 2"),
        (("--attacks", "lira", "--reference-dir", "FILE"), "is a file, not a directory"),
        (("--attacks", "lira", "--per-sample", "OUT/lira.txt"), "name a .csv or .jsonl file"),
        (("--attacks", "svc,loss", "--per-sample", "OUT/lira.csv"), "need --attacks ...,lira"),
        (("--attacks", "svc,loss", "--references", "8"), "need --attacks ...,lira"),
    ],
)
def test_bad_lira_flags_exit_2_and_write_nothing(cli, noisy, tmp_path, args, message):
    (tmp_path / "file").write_text("not a directory\n")
    args = [str(a).replace("FILE", str(tmp_path / "file")).replace("OUT", str(tmp_path)) for a in args]
    before = sorted(tmp_path.iterdir())
    result = invoke(
        cli, "audit", "-m", noisy.original, "-d", noisy.train, "-f", noisy.forget, "--test-data", noisy.test,
        "--out", tmp_path / "audit.json", *args,
    )
    assert result.exit_code == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == before


def test_bench_shows_lira_columns_for_every_row(cli, noisy, tmp_path):
    out = tmp_path / "bench"
    result = invoke(
        cli, "bench", "-m", noisy.original, "-d", noisy.train, "-f", noisy.forget, "--test-data", noisy.test,
        "--methods", "finetune", "--epochs", 1, "--retrain-epochs", 3, "--attacks", "svc,loss,lira",
        "--references", 2, "--reference-dir", tmp_path / "refs", "-o", out, "--json", "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["lira"]["mode"] == "offline" and "offline" in printed["lira"]["note"]
    for row in printed["summary"]:  # the retrained reference, none and the method
        assert row["lira_auc"]["mean"] is not None and row["lira_tpr"]["mean"] is not None, row["method"]
    header = next(line for line in (out / "bench.md").read_text().splitlines() if line.startswith("| method"))
    assert "LiRA AUC" in header and "LiRA TPR @ 1% FPR (%)" in header
