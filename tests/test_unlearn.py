"""`rfau unlearn` end to end on real tiny checkpoints: the class is forgotten, the rest holds,
the files load where users load them, and the report says what happened."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FORGET_CLASS, invoke

from rfau_cli.checkpoint import sha256_file
from rfau_cli.report import REPORT_KEYS


def _unlearn(cli, model: Path, data: tuple[Path, Path], forget: Path, out: Path, *extra: object) -> dict:
    result = invoke(
        cli, "unlearn", "--model", model, "--data", data[0], "--test-data", data[1], "--forget", forget,
        "--out", out, "--quiet", "--json", *extra,
    )
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def resnet_class_run(resnet_ckpt, digits, class_forget_file, tmp_path_factory) -> tuple[Path, dict]:
    from typer.testing import CliRunner

    weights_before = sha256_file(resnet_ckpt / "model.safetensors")
    out = tmp_path_factory.mktemp("unlearn") / "resnet_class"
    report = _unlearn(CliRunner(), resnet_ckpt, digits, class_forget_file, out, "--by", "class")
    assert sha256_file(resnet_ckpt / "model.safetensors") == weights_before, "input checkpoint was modified"
    return out, report


def _assert_class_forgotten(report: dict, kept_tolerance: float = 0.02, forget_max: float = 0.0) -> None:
    before, after = report["metrics"]["before"], report["metrics"]["after"]
    # Not one training row of the class is recognised: the run ends by its stop rule (no row
    # in the class for 3 epochs, losses flat), not by the epoch cap with rows left over.
    assert after["forget"]["acc"] <= forget_max  # forgotten-class training rows
    if forget_max == 0.0:
        assert report["training"]["stop_reason"].startswith("converged"), report["training"]["stop_reason"]
    assert after["test_forget"]["acc"] <= 0.02  # forgotten-class test rows
    assert after["test_retain"]["acc"] >= before["test_retain"]["acc"] - kept_tolerance  # the other classes hold


def test_resnet_class_forgetting(resnet_class_run) -> None:
    _, report = resnet_class_run
    _assert_class_forgotten(report)
    assert report["forget_classes"] == [FORGET_CLASS]
    assert report["metrics"]["after"]["mia"]["efficacy"] >= 0.9


def test_vit_class_forgetting(vit_ckpt, digits, class_forget_file, tmp_path, cli) -> None:
    report = _unlearn(cli, vit_ckpt, digits, class_forget_file, tmp_path / "out", "--by", "class")
    # This fixture (seed 0) keeps the other classes (+1.0 points). Over six training seeds of this
    # 5k-parameter ViT: +1.0, -0.5, -2.5, +1.5, -3.5, -0.5 (benchmarks/class_draws.py; README's
    # known gap), hence the wider bound; another torch build trains other bits from the same seed.
    # The class itself goes to 0% on all six (it stayed at 0.7-4.5% before the hinge).
    _assert_class_forgotten(report, kept_tolerance=0.04)


def test_a_class_next_to_one_neighbour_leaves_the_other_classes(digits, class_forget_file, tmp_path, cli) -> None:
    """The tests' ResNet trained from seed 4: the original ranks 9 next for most of its 3s, and class
    mode at full strength handed 9 digit 8's unseen rows (other classes -2.75 points; -6.3 after a
    second request, digit 5). Half the pull (CLASS_FORGET_SCALE) keeps both requests within 2
    points (measured +0.25 and -0.86; benchmarks/class_draws.py). Another torch build trains other
    bits from this seed."""
    from rfau_cli import toy

    model = toy.train_digits_model("resnet", digits[0], tmp_path / "seed4", seed=4)
    first = _unlearn(cli, model, digits, class_forget_file, tmp_path / "o1", "--by", "class")
    _assert_class_forgotten(first)
    five = tmp_path / "five.txt"
    five.write_text("5\n")
    second = _unlearn(cli, tmp_path / "o1", digits, five, tmp_path / "o2", "--by", "class")
    both = tmp_path / "both.txt"
    both.write_text(f"{FORGET_CLASS}\n5\n")
    result = invoke(cli, "audit", "--model", model, "--data", digits[0], "--test-data", digits[1], "--forget", both,
                    "--by", "class", "--json", "-q")
    assert result.exit_code == 0, result.stderr
    kept_before = json.loads(result.stdout)["metrics"]["test_retain"]["acc"]
    after = second["metrics"]["after"]
    assert after["forget_all"]["acc"] == 0.0 and after["test_forget"]["acc"] <= 0.02
    assert after["test_retain"]["acc"] >= kept_before - 0.02, (after["test_retain"]["acc"], kept_before)


@pytest.mark.slow
def test_minilm_class_forgetting(text_ckpt, text_data, tmp_path, cli) -> None:
    forget = tmp_path / "forget.txt"
    forget.write_text("weather\n")  # by label name
    report = _unlearn(cli, text_ckpt, text_data, forget, tmp_path / "out", "--by", "class", "--epochs", "6")
    _assert_class_forgotten(report, forget_max=0.02)  # a fixed 6 epochs, not run to the stop rule
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "out"
    model = AutoModelForSequenceClassification.from_pretrained(out).eval()
    tokenizer = AutoTokenizer.from_pretrained(out)
    with torch.no_grad():
        logits = model(**tokenizer(["Tomorrow heavy rain is expected across the region."], return_tensors="pt")).logits
    assert model.config.id2label[int(logits.argmax())] != "weather"


def test_sample_forgetting_moves_toward_test(overfit, tmp_path, cli) -> None:
    """A model that memorised its rows: after forgetting a random 10%, D_f looks like unseen
    data (as it does to a model retrained without it) and the test accuracy holds."""
    report = _unlearn(cli, overfit.original, overfit.data, overfit.forget, tmp_path / "out")
    before, after = report["metrics"]["before"], report["metrics"]["after"]
    assert before["forget"]["acc"] == 1.0 and before["forget"]["conf"] > before["test"]["conf"] + 0.05
    # Mean confidence is set by the few rows in the tail (a memorised row sits at p ~ 0.9997
    # until its margin falls below ~5): it must fall, but the attacks below are the judge.
    assert before["test"]["conf"] < after["forget"]["conf"] < before["forget"]["conf"]  # toward test
    assert after["mia"]["loss_auc"] < before["mia"]["loss_auc"] - 0.05  # less distinguishable from test
    assert "target_warning" not in report["training"]  # held-out test rows: no warning
    # 30 rows: a retrain is expected to get about two more wrong, so the targets may turn right rows wrong
    assert report["training"]["expected_new_errors"] >= 0.5
    assert "concentration_warning" not in report["training"]  # a random 10%: no class loses 30%
    assert "class_own_gap_shift" not in report["training"]  # nor is any class's transport shifted
    # no class taken most of: no concentrated test rows, and the others' are every test row (a CI gate on
    # test_others.acc holds for any sample request)
    assert report["concentrated_classes"] == [] and "test_concentrated" not in after
    assert after["test_others"] == after["test"] and after["sizes"]["test_others"] == after["sizes"]["test"]
    assert report["training"]["targets_reached"] == report["training"]["stop_reason"].startswith("converged")
    assert after["test"]["acc"] >= before["test"]["acc"] - 0.02
    audit = invoke(cli, "audit", "--model", overfit.retrained, "--data", overfit.data[0], "--test-data",
                   overfit.data[1], "--forget", overfit.forget, "--json", "--quiet")
    retrained = json.loads(audit.stdout)["metrics"]
    # Closer to the retrained model than the original was, on the attack it is judged by.
    assert abs(after["mia"]["loss_auc"] - retrained["mia"]["loss_auc"]) < abs(
        before["mia"]["loss_auc"] - retrained["mia"]["loss_auc"]
    )


def test_a_request_too_small_for_a_new_error_keeps_its_rows_right(overfit, tmp_path, cli) -> None:
    """The two training rows the original is least sure of (the members' lowest percentiles, which
    the transport maps to wrong test margins): a retrain is expected to get well under one of them
    wrong (|D_f| x the original's test error minus its training error), so neither is asked to turn
    wrong (the 30-row request of the same model expects about two: test_sample_forgetting_moves_toward_test)."""
    from transformers import AutoModelForImageClassification

    from rfau_cli.methods.margin_targets import margins

    pixels, labels = _test_rows(overfit.data[0])  # the training rows, as the model takes them
    original = AutoModelForImageClassification.from_pretrained(overfit.original).eval()
    margin = margins(_logits(original, pixels).numpy(), labels.numpy())[0]
    least_sure = np.argsort(np.where(margin > 0, margin, np.inf))[:2]
    forget = tmp_path / "two.txt"
    forget.write_text("\n".join(map(str, sorted(least_sure))) + "\n")
    report = _unlearn(cli, overfit.original, overfit.data, forget, tmp_path / "two", "--epochs", 5)
    training, before, after = report["training"], report["metrics"]["before"], report["metrics"]["after"]
    assert before["forget"]["acc"] == 1.0
    assert 0 < training["expected_new_errors"] < 0.5 and training["rows_asked_to_cross"] == 0
    assert after["forget"]["acc"] == 1.0  # both rows still right (without the rule: both asked to cross)


def test_peers_of_the_recipe_stand_for_unseen_rows(overfit, tmp_path, cli) -> None:
    """`--set test_margins_from=RETRAIN`: the targets map D_f onto the test margins of a model of the
    same recipe (here the model retrained without D_f, as an earlier request's retrain would be)
    instead of the original's own, and the report says whose, with both test errors. The original
    named as its own peer asks exactly what the defaults ask."""
    runs = {}
    for name, peer in {"own": None, "self": overfit.original, "retrain": overfit.retrained}.items():
        extra = ["--set", f"test_margins_from={peer}"] if peer else []
        runs[name] = _unlearn(cli, overfit.original, overfit.data, overfit.forget, tmp_path / name, "--epochs", 1,
                              *extra)  # fmt: skip
    asked = ("target_margin_mean", "expected_new_errors", "rows_asked_to_cross")
    own, same, peer = (runs[k]["training"] for k in ("own", "self", "retrain"))
    assert "test_margins_from" not in own
    assert {k: same[k] for k in asked} == {k: own[k] for k in asked}
    assert same["test_margins_from"]["test_error"] == same["test_margins_from"]["original_test_error"]
    audit = invoke(cli, "audit", "--model", overfit.retrained, "--data", overfit.data[0], "--test-data",
                   overfit.data[1], "--forget", overfit.forget, "--json", "--quiet")  # fmt: skip
    retrained_test_acc = json.loads(audit.stdout)["metrics"]["test"]["acc"]
    used = peer["test_margins_from"]
    assert used["models"] == [str(overfit.retrained)]
    assert used["weights_sha256"] == [{"model.safetensors": sha256_file(overfit.retrained / "model.safetensors")}]
    assert used["test_error"] == pytest.approx(1 - retrained_test_acc, abs=1e-3)
    assert used["original_test_error"] == pytest.approx(1 - runs["own"]["metrics"]["before"]["test"]["acc"], abs=1e-3)
    assert peer["target_margin_mean"] != own["target_margin_mean"]
    # the new errors a retrain is expected to make on D_f are counted at the peer's test error rate
    n_forget = runs["own"]["metrics"]["before"]["sizes"]["forget"]
    shift = n_forget * (used["test_error"] - used["original_test_error"])
    assert peer["expected_new_errors"] - own["expected_new_errors"] == pytest.approx(shift, abs=0.01)
    assert "one peer is one draw of the recipe" in peer["peers_warning"]  # one retrain: said so


def test_a_peer_that_is_not_a_model_of_the_task_is_exit_2(overfit, text_ckpt, tmp_path, cli) -> None:
    import shutil

    renamed = tmp_path / "renamed"  # the retrained model, its ten classes named otherwise
    shutil.copytree(overfit.retrained, renamed)
    config = json.loads((renamed / "config.json").read_text())
    config["id2label"] = {k: f"digit {v}" for k, v in config["id2label"].items()}
    config["label2id"] = {f"digit {k}": v for k, v in config["label2id"].items()}
    (renamed / "config.json").write_text(json.dumps(config))
    for name, peer, says in (("missing", tmp_path / "nowhere", "model not found"),
                             ("text", text_ckpt, "has other classes than the model"),
                             ("names", renamed, "named or ordered otherwise")):  # fmt: skip
        out = tmp_path / name
        result = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                        overfit.data[1], "--forget", overfit.forget, "--out", out, "--set",
                        f"test_margins_from={overfit.retrained},{peer}")  # fmt: skip
        assert result.exit_code == 2, result.stderr
        assert says in result.stderr and "test_margins_from" in result.stderr and "Traceback" not in result.stderr
        assert not out.exists() and not list(tmp_path.glob(f".{name}*"))


def test_a_run_short_of_its_targets_pushes_harder(overfit, tmp_path, cli) -> None:
    """A run on course to end far from its targets (here a pull of a hundredth of the usual
    weight, 12 epochs) doubles its forget weight once two windows of history show it, and ends
    closer to the targets than the same run with `--set max_forget_boost=1` (the constant pull)."""
    runs = {}
    for name, extra in {"default": [], "off": ["--set", "max_forget_boost=1"]}.items():
        report = _unlearn(cli, overfit.original, overfit.data, overfit.forget, tmp_path / name, "--gamma", 0.01,
                          "--epochs", 12, *extra)  # fmt: skip
        runs[name] = report["training"]
    assert {r["forget_boost"] for r in runs["off"]["history"]} == {1.0}
    boosts = [r["forget_boost"] for r in runs["default"]["history"]]
    assert boosts == [1.0] * 9 + [2.0] * 3  # first chance: epoch 10, with two 5-epoch windows behind it
    assert runs["default"]["forget_boost"] == 2.0
    assert runs["default"]["history"][8] == runs["off"]["history"][8]  # the same run up to there
    assert runs["default"]["history"][-1]["margin_excess"] < runs["off"]["history"][-1]["margin_excess"]
    # Both end at the cap short of their targets, and say so, with what would push further.
    for run in runs.values():
        assert run["targets_reached"] is False and 0.1 < run["margin_drop_left"] <= 1.0
        assert "of the asked margin drop left" in run["targets_warning"] and "raise --epochs" in run["targets_warning"]
    assert "--set max_forget_boost=8` (the default)" in runs["off"]["targets_warning"]
    boosted = runs["default"]["targets_warning"]
    assert "ended at 2x" in boosted and "max_forget_boost" not in boosted
    # The model card that ships with the weights carries the warning too.
    assert "of the asked margin drop left" in (tmp_path / "default" / "README.md").read_text()


def test_a_one_sided_pull_leaves_the_forgotten_rows_further_down(overfit, tmp_path, cli) -> None:
    """`forget_pull`: 'two-sided' holds forget rows that fell below their target back up,
    'one-sided' does not. With a strong pull (`--gamma 4`, rows overshoot) the same run (seed,
    targets) ends with D_f less familiar one-sided, measured: D_f loss 0.0080 against 0.0040,
    loss-attack AUC 0.557 against 0.612 (the two-sided run spent its last steps pulling rows
    back up). The report says which pull ran. The kept-margin weight is pinned (0.1): its 'auto' reads
    the same memorisation test and would hold the kept rows, and with them the forgotten ones, harder."""
    runs = {
        pull: _unlearn(cli, overfit.original, overfit.data, overfit.forget, tmp_path / pull, "--gamma", 4,
                       "--set", f"forget_pull={pull}", "--set", "kept_margin_weight=0.1")  # fmt: skip
        for pull in ("two-sided", "one-sided")
    }
    for pull, report in runs.items():
        assert report["settings"]["forget_pull"] == pull and report["training"]["forget_pull"] == pull
        assert report["training"]["target_margin_mean"] == runs["two-sided"]["training"]["target_margin_mean"]
    one, two = runs["one-sided"]["metrics"]["after"], runs["two-sided"]["metrics"]["after"]
    assert one["forget"]["loss"] > two["forget"]["loss"]
    assert one["forget"]["conf"] < two["forget"]["conf"]
    assert one["mia"]["loss_auc"] < two["mia"]["loss_auc"]


def test_auto_pull_is_one_sided_on_a_model_that_memorised_its_rows(
    overfit, resnet_ckpt, digits, sample_forget_file, tmp_path, cli
) -> None:
    """'auto' (the default) asks whether the original memorised its rows: a loss attack on its
    training rows against its test rows. The 300-row, 150-epoch ResNet did (one-sided, and the
    same run as asking for it); the tests' ResNet trained on all the digits did not."""
    from rfau_cli.methods.rfau import MEMORISED_AUC

    memorised = _unlearn(cli, overfit.original, overfit.data, overfit.forget, tmp_path / "mem", "--epochs", 3)
    asked = _unlearn(cli, overfit.original, overfit.data, overfit.forget, tmp_path / "asked", "--epochs", 3,
                     "--set", "forget_pull=one-sided")  # fmt: skip
    assert memorised["settings"]["forget_pull"] == "auto"
    assert memorised["training"]["forget_pull"] == "one-sided"
    assert memorised["training"]["memorisation_auc"] >= MEMORISED_AUC
    assert memorised["training"]["history"] == asked["training"]["history"]
    shown = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                   overfit.data[1], "--forget", overfit.forget, "--epochs", 1, "--out", tmp_path / "shown")  # fmt: skip
    auc = f"{memorised['training']['memorisation_auc']:.2f}"
    assert f"forget pull: one-sided (memorised: a loss attack tells the original's training rows from its test " \
        f"rows with AUC {auc})" in " ".join(shown.stdout.split())  # fmt: skip
    fitted = _unlearn(cli, resnet_ckpt, digits, sample_forget_file, tmp_path / "fit", "--epochs", 1)
    assert fitted["training"]["forget_pull"] == "two-sided"
    assert 0.4 < fitted["training"]["memorisation_auc"] < MEMORISED_AUC


def test_an_unknown_forget_pull_is_exit_2_and_writes_nothing(overfit, tmp_path, cli) -> None:
    result = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                    overfit.data[1], "--forget", overfit.forget, "--out", tmp_path / "out", "--set",
                    "forget_pull=sideways")  # fmt: skip
    assert result.exit_code == 2
    assert "forget_pull=sideways: must be one of auto, one-sided, two-sided" in result.stderr
    assert not (tmp_path / "out").exists()


def test_the_kept_margin_floor_follows_how_sure_the_model_is(overfit, tmp_path, cli) -> None:
    """'auto' (the default) holds each kept row at min(its own margin, 0.75 x the original's median margin
    on the training rows it gets right): a floor in the model's own units, where one number of logits
    held every row of a model surer of nothing or left most rows of a surer one free. Under a strong
    pull the kept rows then keep more of their margins than under a floor of 0 or a lower one."""
    from transformers import AutoModelForImageClassification

    from rfau_cli.methods.margin_targets import margins
    from rfau_cli.methods.rfau import KEPT_MARGIN_FLOOR_SHARE

    pixels, labels = _test_rows(overfit.data[0])
    original = AutoModelForImageClassification.from_pretrained(overfit.original).eval()
    before = margins(_logits(original, pixels).numpy(), labels.numpy())[0]
    floor = KEPT_MARGIN_FLOOR_SHARE * np.median(before[before > 0])
    kept = np.setdiff1d(np.arange(len(labels)), np.loadtxt(overfit.forget, dtype=int))
    slid = {}
    for name in ("auto", "0", "3.5"):
        extra = [] if name == "auto" else ["--set", f"kept_margin_floor={name}"]
        report = _unlearn(cli, overfit.original, overfit.data, overfit.forget, tmp_path / name, "--epochs", 20,
                          "--gamma", 16, *extra)  # fmt: skip
        assert report["settings"]["kept_margin_floor"] == name
        expected = floor if name == "auto" else float(name)
        assert report["training"]["kept_margin_floor"] == pytest.approx(expected, abs=1e-3)
        model = AutoModelForImageClassification.from_pretrained(tmp_path / name).eval()
        after = margins(_logits(model, pixels).numpy(), labels.numpy())[0]
        held = np.minimum(before[kept], floor)
        slid[name] = float(np.mean(np.maximum(held - after[kept], 0)[before[kept] > 0]))
    # measured (with the weight 'auto' gives this memorising model, 0.5): 0.04 logits short of min(own margin,
    # auto floor) on average, against 0.51 at floors 0 and 3.5 (0.31 and 0.51 at the weight of 0.1)
    assert slid["auto"] < 0.8 * min(slid["0"], slid["3.5"])
    shown = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                   overfit.data[1], "--forget", overfit.forget, "--epochs", 1, "--out", tmp_path / "shown")  # fmt: skip
    assert f"kept-margin floor: {floor:.2f} logits (auto: from the original's median margin on the training rows it " \
        "gets right)" in " ".join(shown.stdout.split())  # fmt: skip


def test_the_kept_margin_weight_is_firmer_where_the_original_memorised(
    overfit, resnet_ckpt, digits, sample_forget_file, tmp_path, cli
) -> None:
    """'auto' (the default) weighs the kept-margin hinge KEPT_MARGIN_WEIGHT_MEMORISED where the original
    memorised its rows (the same loss-attack test as the forget pull) and KEPT_MARGIN_WEIGHT where it
    did not: a retrain of a memorising model keeps its kept rows' margins, so what they lose is
    RFAU's doing. Under a strong pull the memorised model's kept rows then keep more of their margins
    than at the weight for a model that generalises."""
    from transformers import AutoModelForImageClassification

    from rfau_cli.methods.margin_targets import margins
    from rfau_cli.methods.rfau import KEPT_MARGIN_WEIGHT, KEPT_MARGIN_WEIGHT_MEMORISED, MEMORISED_AUC

    pixels, labels = _test_rows(overfit.data[0])
    original = AutoModelForImageClassification.from_pretrained(overfit.original).eval()
    before = margins(_logits(original, pixels).numpy(), labels.numpy())[0]
    kept = np.setdiff1d(np.arange(len(labels)), np.loadtxt(overfit.forget, dtype=int))
    kept = kept[before[kept] > 0]
    runs, slid = {}, {}
    for name in ("auto", str(KEPT_MARGIN_WEIGHT)):
        extra = [] if name == "auto" else ["--set", f"kept_margin_weight={name}"]
        runs[name] = _unlearn(cli, overfit.original, overfit.data, overfit.forget, tmp_path / name, "--epochs", 20,
                              "--gamma", 16, *extra)  # fmt: skip
        model = AutoModelForImageClassification.from_pretrained(tmp_path / name).eval()
        after = margins(_logits(model, pixels).numpy(), labels.numpy())[0]
        held = np.minimum(before[kept], runs[name]["training"]["kept_margin_floor"])
        slid[name] = float(np.mean(np.maximum(held - after[kept], 0)))
    auto = runs["auto"]
    assert auto["settings"]["kept_margin_weight"] == "auto"
    assert auto["training"]["memorisation_auc"] >= MEMORISED_AUC
    assert auto["training"]["kept_margin_weight"] == KEPT_MARGIN_WEIGHT_MEMORISED
    assert runs[str(KEPT_MARGIN_WEIGHT)]["training"]["kept_margin_weight"] == KEPT_MARGIN_WEIGHT
    # measured: 0.04 logits short of min(own margin, floor) on average, against 0.31 at 0.1 (test accuracy
    # 93.8% against 91.8%)
    assert slid["auto"] < 0.8 * slid[str(KEPT_MARGIN_WEIGHT)]
    shown = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                   overfit.data[1], "--forget", overfit.forget, "--epochs", 1, "--out", tmp_path / "shown")  # fmt: skip
    assert f"kept-margin weight: {KEPT_MARGIN_WEIGHT_MEMORISED:g} (auto: memorised, as above)" in " ".join(
        shown.stdout.split()
    )
    pull_asked = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                        overfit.data[1], "--forget", overfit.forget, "--epochs", 1, "--out", tmp_path / "pull",
                        "--set", "forget_pull=two-sided")  # fmt: skip
    auc = f"{auto['training']['memorisation_auc']:.2f}"
    said = " ".join(pull_asked.stdout.split())
    assert "forget pull: two-sided (asked for)" in said
    assert f"kept-margin weight: {KEPT_MARGIN_WEIGHT_MEMORISED:g} (auto, memorised: a loss attack tells the " \
        f"original's training rows from its test rows with AUC {auc})" in said  # fmt: skip
    fitted = _unlearn(cli, resnet_ckpt, digits, sample_forget_file, tmp_path / "fit", "--epochs", 1)
    assert fitted["training"]["memorisation_auc"] < MEMORISED_AUC
    assert fitted["training"]["kept_margin_weight"] == KEPT_MARGIN_WEIGHT
    asked = _unlearn(cli, resnet_ckpt, digits, sample_forget_file, tmp_path / "asked", "--epochs", 1, "--set",
                     "kept_margin_weight=0.5", "--set", "forget_pull=two-sided")  # fmt: skip
    assert asked["training"]["kept_margin_weight"] == 0.5
    assert "memorisation_auc" not in asked["training"]  # nothing left to choose
    off = _unlearn(cli, resnet_ckpt, digits, sample_forget_file, tmp_path / "off", "--epochs", 1, "--set",
                   "kept_margin_weight=0")  # fmt: skip
    assert "kept_margin_weight" not in off["training"] and "kept_margin_floor" not in off["training"]


def test_a_bad_kept_margin_setting_is_exit_2_and_writes_nothing(overfit, tmp_path, cli) -> None:
    for name, unit in (("kept_margin_floor", "a number of logits"), ("kept_margin_weight", "a number")):
        for value in ("high", "-1", "nan"):
            result = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                            overfit.data[1], "--forget", overfit.forget, "--out", tmp_path / "out", "--set",
                            f"{name}={value}")  # fmt: skip
            assert result.exit_code == 2, value
            assert f"{name}={value}: must be 'auto' or {unit}, 0 or more" in result.stderr
            assert not (tmp_path / "out").exists()


def test_training_rows_as_test_data_are_flagged(overfit, tmp_path, cli) -> None:
    """Passing the training rows as --test-data (a slip a user makes) leaves the sample target
    no non-members to copy: the run says so on stderr and in the report instead of quietly
    forgetting nothing."""
    result = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                    overfit.data[0], "--forget", overfit.forget, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert "as sure of the test rows as of its training rows" in report["training"]["target_warning"]
    assert "warning: the model is as sure of the test rows" in result.stderr


def test_a_request_concentrated_in_one_class_is_flagged(overfit, tmp_path, cli, capsys) -> None:
    """Most of one class's rows (one user's data is often one kind): a retrain would learn the
    class worse, by an amount the run does not know, so it says so; a class slope measured by
    `rfau bench` and passed on asks more of the class's rows."""
    from rfau_cli.methods.margin_targets import CLASS_SHRINK, CLASS_SLOPE

    forget, taken = _concentrated_forget(overfit, tmp_path)
    runs = {}
    settings = {None: [], "1": ["--set", "class_slope=1", "--set", "class_shrink=0"],
                "follow": ["--set", "follow_test_rows=true"],
                "3": ["--set", "class_slope=3"],
                "3:3": ["--set", "class_slopes=3:3"],
                "3+follow": ["--set", "class_slope=3", "--set", "follow_test_rows=true"],
                "pooled": ["--set", "class_own_gap=false"],
                "peer": ["--set", f"test_margins_from={overfit.retrained}"]}  # fmt: skip
    for slope, extra in settings.items():
        result = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                        overfit.data[1], "--forget", forget, "--epochs", 2, "--out", tmp_path / f"out-{slope}",
                        "--json", *extra)
        assert result.exit_code == 0, result.stderr
        report = json.loads(result.stdout)
        runs[slope] = report["training"]
        if slope is None:
            default = report
    warning = runs[None]["concentration_warning"]
    assert f"3 ({100 * taken:.0f}%)" in warning  # the class, by its label name
    assert f"the default class slope {CLASS_SLOPE:g}, less {100 * CLASS_SHRINK:.0f}% of the model's surplus" in warning
    assert "the class prior alone (class_slope 1), so expect" in runs["1"]["concentration_warning"]  # no surplus
    # the default asks more of the class's rows than the prior alone (2.5 against 1 x label shift)
    assert runs[None]["target_margin_mean"] < runs["1"]["target_margin_mean"] - 0.2
    assert "follow the unlearned model's own test rows" in runs["follow"]["concentration_warning"]
    assert "assume class_slope 3, less 50% of the model's surplus" in runs["3"]["concentration_warning"]
    assert "warning: the request removes a large share" in result.stderr
    # asked to, the targets follow the model's own test rows, recomputed after each epoch; not with
    # a class slope given (it already says how far the class falls), nor by default
    assert runs["follow"]["targets_follow_test_rows"] and "target_margin_mean" in runs["follow"]["history"][-1]
    assert runs["follow"]["target_margin_mean"] == runs["follow"]["history"][-1]["target_margin_mean"]
    assert not any(runs[k]["targets_follow_test_rows"] for k in (None, "1", "3", "3:3", "3+follow"))
    assert "target_margin_mean" not in runs[None]["history"][-1]
    # following starts from the prior alone (the model's own test rows carry the class's fall);
    # they fell as its forgotten rows were pushed down, and the targets with them
    # (after one epoch its targets sit at or just below the prior alone's, far above the default
    # slope's: from slope 2 they would start ~1 logit lower)
    first = runs["follow"]["history"][0]["target_margin_mean"]
    # (following takes no own-gap shift of the class either: against the default without it)
    assert runs["pooled"]["target_margin_mean"] + 0.5 < first <= runs["1"]["target_margin_mean"] + 1e-6
    assert runs["follow"]["target_margin_mean"] < runs["1"]["target_margin_mean"]
    # a slope of 3 lowers the class's targets by 2 x label shift more than the prior alone:
    # log(1/3) - log(~0.97) ~ -1.07 logits for the rows of digit 3, two thirds of its rows gone
    assert runs["3"]["target_margin_mean"] < runs["1"]["target_margin_mean"] - 0.5
    # the same slope given to digit 3 alone (as `rfau bench` prints it) asks the same of its rows
    # (a slope given for every class keeps the surplus; a class's own, measured on this original, does not)
    surplus = runs["3"]["class_surplus"]["3"]
    own_minus_all = runs["3:3"]["target_margin_mean"] - runs["3"]["target_margin_mean"]
    assert "class_surplus" not in runs["3:3"] and surplus > 0  # the overfit model is surest of digit 3
    assert 0.5 * surplus < own_minus_all <= surplus + 1e-3  # every forgotten row is a 3 (a target may clip)
    assert "assume the class slopes 3: 3" in runs["3:3"]["concentration_warning"]
    # the class's own gap between training and test rows sets how far its rows fall (every forgotten
    # row is a 3: the targets move by the shift, less where a target meets the row's own margin)
    shift = runs[None]["class_own_gap_shift"]["3"]
    moved = runs[None]["target_margin_mean"] - runs["pooled"]["target_margin_mean"]
    assert "class_own_gap_shift" not in runs["pooled"] and "class_own_gap_shift" not in runs["follow"]
    assert abs(shift) > 0.05 and 0 < moved / shift <= 1 + 1e-3
    # mapped onto a peer's test margins, the shift is still the original's own (a class's mean over
    # peers carries their seeds): the same, while the targets follow the peer
    assert runs["peer"]["class_own_gap_shift"] == runs[None]["class_own_gap_shift"]
    assert runs["peer"]["target_margin_mean"] != runs[None]["target_margin_mean"]
    # the audit splits the test rows by the class the request took most of: a retrain learns it worse,
    # so a drop there is expected, and one on the other classes is harm; the two add up to test
    import datasets

    test_labels = np.asarray(datasets.load_from_disk(str(overfit.data[1]))["label"])
    assert default["concentrated_classes"] == [3]
    for when in ("before", "after"):
        metrics = default["metrics"][when]
        sizes = metrics["sizes"]
        assert sizes["test_concentrated"] == int((test_labels == 3).sum()) > 0
        assert sizes["test_concentrated"] + sizes["test_others"] == sizes["test"]
        whole = metrics["test_concentrated"]["acc"] * sizes["test_concentrated"]
        whole += metrics["test_others"]["acc"] * sizes["test_others"]
        assert whole == pytest.approx(metrics["test"]["acc"] * sizes["test"])
    from rfau_cli.summary import print_unlearn_summary

    capsys.readouterr()
    print_unlearn_summary(default)
    shown = capsys.readouterr().out
    assert "test, request's classes" in shown and "test, other classes" in shown
    card = (tmp_path / "out-None" / "README.md").read_text()
    others = default["metrics"]["after"]["test_others"]["acc"]
    assert "test accuracy, the other classes" in card and f"{others:.4f}" in card
    # `rfau audit` of the output splits them the same way, and a CI gate can hold the other classes
    audit = invoke(cli, "audit", "--model", tmp_path / "out-None", "--data", overfit.data[0], "--test-data",
                   overfit.data[1], "--forget", forget, "--require", "test_others.acc>=0.5", "--json", "--quiet")
    assert audit.exit_code == 0, audit.stderr
    audited = json.loads(audit.stdout)
    assert audited["settings"]["concentrated_classes"] == [3]
    assert audited["metrics"]["test_others"]["acc"] == pytest.approx(default["metrics"]["after"]["test_others"]["acc"])
    (gate,) = audited["gates"]
    assert gate["key"] == "test_others.acc" and gate["passed"]
    assert gate["actual"] == audited["metrics"]["test_others"]["acc"]


def _concentrated_forget(overfit, tmp_path: Path) -> tuple[Path, float]:
    """A forget list of two thirds of digit 3's rows of the overfit model's data, and the share of
    the class it takes."""
    import datasets

    labels = np.asarray(datasets.load_from_disk(str(overfit.data[0]))["label"])
    threes = np.flatnonzero(labels == 3)
    taken = threes[: (2 * len(threes)) // 3]
    forget = tmp_path / "forget.txt"
    forget.write_text("\n".join(map(str, taken)) + "\n")
    return forget, len(taken) / len(threes)


def _test_rows(data: Path, rows: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `rows` (all) test images as the digits models take them, and their labels."""
    import datasets

    test = datasets.load_from_disk(str(data))
    images = test["image"][:rows] if rows else test["image"]
    pixels = torch.tensor(np.stack([np.asarray(im, dtype=np.float32) / 255.0 for im in images]))[:, None]
    return pixels, torch.tensor(list(test["label"][: len(pixels)]))


def _logits(model, pixels: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(pixel_values=pixels).logits


def test_a_concentrated_request_moves_the_class_prior_into_the_head(overfit, tmp_path, cli) -> None:
    """A retrain that lost two thirds of digit 3 is less sure of the whole class: the head's bias for
    3 falls by the class slope x log(1/3), for every row, unseen ones too; the adapter carries the
    head (peft modules_to_save), so base + adapter is the merged model, and a later request on the
    adapter output keeps it."""
    from peft import PeftModel
    from transformers import AutoModelForImageClassification

    from rfau_cli.methods.margin_targets import CLASS_SHRINK, CLASS_SLOPE, margins

    forget, taken = _concentrated_forget(overfit, tmp_path)
    log_kept = float(np.log(1 - taken))
    pixels, labels = _test_rows(overfit.data[1])
    original = AutoModelForImageClassification.from_pretrained(overfit.original).eval()
    # how much surer of digit 3 the original is than of the other digits, on its test rows
    test_margin = margins(_logits(original, pixels).numpy(), labels.numpy())[0]
    per_class = [test_margin[labels.numpy() == c].mean() for c in range(10)]
    surplus = CLASS_SHRINK * (per_class[3] - np.mean(np.delete(per_class, 3)))
    report = _unlearn(cli, overfit.original, overfit.data, forget, tmp_path / "out", "--epochs", 2)
    shift = report["training"]["head_shift"]
    assert report["training"]["class_surplus"]["3"] == pytest.approx(surplus, abs=1e-3)
    # the default class slope, less the share of the original's surplus on the class, never above 0
    assert shift["3"] == pytest.approx(min(CLASS_SLOPE * log_kept - surplus, 0.0), abs=1e-3)
    assert all(-0.1 < v <= 0 for c, v in shift.items() if c != "3")  # the other classes' prior, slope 1
    # without the surplus, or with a slope of the class's own (measured on this original), slope x log kept
    for i, option in enumerate(("class_shrink=0", f"class_slopes=3:{CLASS_SLOPE}")):
        alone = _unlearn(cli, overfit.original, overfit.data, forget, tmp_path / f"alone-{i}", "--epochs", 1,
                         "--set", option)  # fmt: skip
        assert alone["training"]["head_shift"]["3"] == pytest.approx(CLASS_SLOPE * log_kept, abs=1e-3)
        assert "class_surplus" not in alone["training"] or alone["training"]["class_surplus"]["3"] == 0.0
    config = json.loads((tmp_path / "out" / "adapter" / "adapter_config.json").read_text())
    assert config["modules_to_save"] == ["classifier.1"]
    merged = AutoModelForImageClassification.from_pretrained(tmp_path / "out").eval()
    original_bias = original.classifier[1].bias.detach().clone()  # peft wraps the module in place below
    bias_fall = (merged.classifier[1].bias.detach() - original_bias).numpy()
    assert bias_fall == pytest.approx([shift[str(c)] for c in range(10)], abs=1e-4)  # the report rounds to 4 places
    assert f"3 by {-shift['3']:.2f}" in (tmp_path / "out" / "README.md").read_text()  # the model card says so
    adapted = PeftModel.from_pretrained(original, tmp_path / "out" / "adapter").eval()
    assert torch.allclose(_logits(merged, pixels), _logits(adapted, pixels), atol=1e-4)

    # an adapter-only output, then a second (random) request on it: the adapter written holds both
    # requests' residuals and the first one's head
    _unlearn(cli, overfit.original, overfit.data, forget, tmp_path / "first", "--epochs", 2, "--save", "adapter")
    second = tmp_path / "second.txt"
    second.write_text("0\n1\n2\n")
    after = _unlearn(cli, tmp_path / "first", overfit.data, second, tmp_path / "both", "--epochs", 1,
                     "--save", "adapter")  # fmt: skip
    assert "head_shift" not in after["training"]
    base = AutoModelForImageClassification.from_pretrained(overfit.original).eval()
    chained = PeftModel.from_pretrained(base, tmp_path / "both").eval()
    head = chained.base_model.model.classifier[1].modules_to_save["default"]
    assert (head.bias.detach() - original_bias)[3].item() == pytest.approx(shift["3"], abs=1e-3)
    accuracy = (_logits(chained, pixels).argmax(-1) == labels).float().mean()
    assert accuracy.item() == pytest.approx(after["metrics"]["after"]["test"]["acc"], abs=1e-6)

    # asked not to, the targets alone carry the class's fall: the head and the adapter stay as they were
    plain = _unlearn(cli, overfit.original, overfit.data, forget, tmp_path / "plain", "--epochs", 2,
                     "--set", "class_prior_in_head=false")  # fmt: skip
    assert "head_shift" not in plain["training"]
    assert not json.loads((tmp_path / "plain" / "adapter" / "adapter_config.json").read_text()).get("modules_to_save")


@pytest.mark.parametrize(
    ("value", "says"),
    [("3=2", "is not CLASS:SLOPE"), ("horse:2", "the model has no class 'horse'"), ("3:-2", "0 or more")],
)
def test_bad_class_slopes_exit_2_before_anything_is_written(overfit, tmp_path, cli, value, says) -> None:
    result = invoke(cli, "unlearn", "--model", overfit.original, "--data", overfit.data[0], "--test-data",
                    overfit.data[1], "--forget", overfit.forget, "--out", tmp_path / "out", "--set",
                    f"class_slopes={value}")
    assert result.exit_code == 2, result.stderr
    assert says in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_outputs_load_and_agree(resnet_class_run, resnet_ckpt, digits) -> None:
    """Merged weights == base + adapter (1e-4); both load with their own libraries."""
    from peft import PeftModel
    from transformers import AutoModelForImageClassification

    out, _ = resnet_class_run
    assert {"adapter", "config.json", "model.safetensors", "report.json"} <= {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors"} <= {p.name for p in (out / "adapter").iterdir()}
    merged = AutoModelForImageClassification.from_pretrained(out).eval()
    assert not hasattr(merged, "peft_config")  # a plain checkpoint: nothing applied on top
    base = AutoModelForImageClassification.from_pretrained(resnet_ckpt)
    adapted = PeftModel.from_pretrained(base, out / "adapter").eval()
    pixels, labels = _test_rows(digits[1], 64)
    a, b = _logits(merged, pixels), _logits(adapted, pixels)
    assert torch.allclose(a, b, atol=1e-4)
    assert not (a.argmax(-1)[labels == FORGET_CLASS] == FORGET_CLASS).any()


def test_a_second_run_in_the_same_process_may_change_precision(resnet_ckpt, digits, class_forget_file, tmp_path,
                                                               cli) -> None:
    """accelerate holds one device and precision per process: a notebook (or a GPU machine's test
    session, CUDA first, then the CPU) running a second job with other settings is not refused."""
    runs = [
        _unlearn(cli, resnet_ckpt, digits, class_forget_file, tmp_path / f"{i}-{precision}", "--by", "class",
                 "--epochs", "1", "--device", "cpu", "--precision", precision)
        for i, precision in enumerate(("bf16", "fp32", "bf16"))
    ]
    assert [r["precision"] for r in runs] == ["bf16", "fp32", "bf16"]
    for report in runs:
        assert report["metrics"]["after"]["forget"]["acc"] < report["metrics"]["before"]["forget"]["acc"]


def test_report_fields(resnet_class_run, resnet_ckpt, class_forget_file) -> None:
    out, report = resnet_class_run
    assert json.loads((out / "report.json").read_text()) == report
    assert set(REPORT_KEYS) <= set(report)
    assert report["inputs"]["weights_sha256"]["model.safetensors"] == sha256_file(resnet_ckpt / "model.safetensors")
    assert report["inputs"]["forget_list_sha256"] == sha256_file(class_forget_file)
    assert report["outputs"]["sha256"]["model.safetensors"] == sha256_file(out / "model.safetensors")
    adapter = out / "adapter" / "adapter_model.safetensors"
    assert report["outputs"]["sha256"]["adapter/adapter_model.safetensors"] == sha256_file(adapter)
    for key in ("rank", "alpha", "gamma", "epochs", "lr", "batch_size", "retain_ratio", "taps"):
        assert key in report["settings"]
    for phase in ("load", "audit_before", "setup", "fit", "save", "audit_after", "total"):
        assert report["timings_s"][phase] >= 0
    assert report["peak_memory_mib"]["cpu_rss_mib"] > 0
    assert report["trainable_parameters"] > 0
    assert report["device"] == "cpu" and report["precision"] == "fp32"
    for split in ("forget", "retain", "test"):
        assert {"acc", "conf"} <= set(report["metrics"]["before"][split])
    assert 0 <= report["metrics"]["original"]["retain_feature_distance"] < 0.5
    assert report["metrics"]["after"]["sizes"]["retain"] <= report["metrics"]["after"]["sizes"]["retain_total"]
    training = report["training"]
    assert len(training["history"]) == training["epochs"] <= training["epochs_cap"]
    assert training["epochs_cap"] >= report["settings"]["epochs"]  # the cap, raised to reach min_steps
    if training["stop_reason"].startswith("epochs cap"):
        assert training["steps"] >= report["settings"]["min_steps"]


def test_save_modes_and_stdin(resnet_ckpt, digits, tmp_path, cli) -> None:
    """--save adapter writes no merged weights; '-' reads the forget list from stdin."""
    result = invoke_stdin(
        cli, f"{FORGET_CLASS}\n", "unlearn", "--model", resnet_ckpt / "model.safetensors", "--data", digits[0],
        "--forget", "-", "--by", "class", "--out", tmp_path / "a", "--save", "adapter", "--epochs", "1", "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    names = {p.name for p in (tmp_path / "a").iterdir()}
    assert "adapter_model.safetensors" in names and "model.safetensors" not in names
    assert result.stdout.strip()  # the summary table goes to stdout without --json


def invoke_stdin(runner, text: str, *args: object):
    from rfau_cli.cli import app

    return runner.invoke(app, [str(a) for a in args], input=text, catch_exceptions=False)


def test_same_seed_same_adapter(resnet_ckpt, digits, class_forget_file, tmp_path, cli) -> None:
    args = ("--by", "class", "--epochs", "2", "--save", "adapter")
    first = _unlearn(cli, resnet_ckpt, digits, class_forget_file, tmp_path / "a", *args)
    second = _unlearn(cli, resnet_ckpt, digits, class_forget_file, tmp_path / "b", *args)
    assert first["outputs"]["sha256"] == second["outputs"]["sha256"]
