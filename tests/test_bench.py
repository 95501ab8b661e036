"""`rfau bench` end to end on digits: files, columns, the noise floor and the share closed, and a
failing method that does not stop it."""

from __future__ import annotations

import json

import pytest
from conftest import invoke

from rfau_cli.commands.bench import (
    BENCH_JSON,
    BENCH_MD,
    BENCH_PNG,
    NONE,
    REFERENCE,
    noise_floor,
    removable_by_metric,
    removable_gap,
    share_closed,
)
from rfau_cli.commands.bench_render import HEADER, describe
from rfau_cli.same_time import plan_same_time, same_time_label

METHODS = ("rfau", "finetune")


@pytest.fixture(scope="module")
def reference(digits, resnet_ckpt, class_forget_file, tmp_path_factory):
    """A (short) retrain without digit 3, the given reference of the bench."""
    from typer.testing import CliRunner

    train, test = digits
    out = tmp_path_factory.mktemp("reference") / "retrained"
    result = invoke(
        CliRunner(),
        "retrain",
        "-m",
        resnet_ckpt,
        "-d",
        train,
        "-f",
        class_forget_file,
        "--by",
        "class",
        "--test-data",
        test,
        "--epochs",
        2,
        "-o",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    return out


def test_bench_two_methods_with_reference(cli, digits, resnet_ckpt, class_forget_file, reference, tmp_path):
    train, test = digits
    out = tmp_path / "bench"
    result = invoke(
        cli,
        "bench",
        "-m",
        resnet_ckpt,
        "-d",
        train,
        "-f",
        class_forget_file,
        "--by",
        "class",
        "--test-data",
        test,
        "--methods",
        ",".join(METHODS),
        "--reference",
        reference,
        "--epochs",
        1,
        "--gamma",
        0.5,
        "-o",
        out,
        "--json",
        "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    printed = json.loads(result.stdout)
    # --gamma reaches the method that has a forget-loss weight
    assert json.loads((out / "runs" / "rfau-s0" / "report.json").read_text())["settings"]["gamma"] == 0.5
    assert sorted(p.name for p in out.iterdir()) == sorted([BENCH_JSON, BENCH_MD, BENCH_PNG, "runs"])
    assert json.loads((out / BENCH_JSON).read_text()) == printed
    assert (out / BENCH_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert printed["reference"]["source"] == "checkpoint" and printed["reference"]["path"] == str(reference)
    assert printed["reference"]["paths"] == [str(reference)]
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(f"{m}-s0" for m in METHODS)
    # One reference: no floor, so no share closed, and the table says so.
    assert printed["floor"]["mean"] is None and printed["floor"]["pairs"] == []
    assert printed["class_slope"] == {"classes": [], "rfau_used": None}  # class mode: no slope to measure or use

    summary = {row["method"]: row for row in printed["summary"]}
    assert list(summary) == [REFERENCE, NONE, *METHODS]
    assert summary[REFERENCE]["avg_gap_pp"]["mean"] == 0.0
    assert summary[NONE]["avg_gap_pp"]["mean"] > 0  # the original still knows class 3
    for name in METHODS:
        row = summary[name]
        assert row["status"] == "ok" and row["seeds_ok"] == 1
        for key in (
            "ua",
            "ra",
            "ta",
            "mia_efficacy",
            "loss_auc",
            "avg_gap_pp",
            "time_s",
            "peak_memory_mib",
            "trainable_parameters",
        ):
            assert row[key]["mean"] is not None, (name, key)
        assert row["avg_gap_pp"]["std"] is None  # one seed: no spread
        assert row["share_closed"]["mean"] is None
    assert summary["rfau"]["trainable_parameters"]["mean"] < summary["finetune"]["trainable_parameters"]["mean"]
    run = next(r for r in printed["runs"] if r["method"] == "rfau")
    assert run["gap"]["avg_gap_keys"][0] == "forget.ua" and len(run["gap"]["avg_gap_keys"]) == 4

    table = (out / BENCH_MD).read_text().splitlines()
    header = next(line for line in table if line.startswith("| method"))
    assert [c.strip() for c in header.strip("|").split("|")] == list(HEADER)
    for title in (
        "UA",
        "RA",
        "TA",
        "MIA-efficacy",
        "loss-attack AUC",
        "loss AUC gap",
        "avg gap to retrain",
        "floor",
        "share closed",
        "time",
        "peak memory",
        "trainable params",
    ):
        assert title in header
    assert sum(line.startswith(("| rfau", "| finetune", "| retrain", "| none")) for line in table) == 4
    assert "Floor: n/a" in (out / BENCH_MD).read_text()
    rfau_row = next(line for line in table if line.startswith("| rfau"))
    assert rfau_row.count("n/a") == 2  # the floor and the share closed


def test_bench_failing_method_is_reported_and_others_complete(
    cli, digits, resnet_ckpt, class_forget_file, tmp_path, monkeypatch
):
    from failing_method import MESSAGE

    from rfau_cli import methods

    monkeypatch.setitem(methods.REGISTRY, "boom", ("failing_method", "fails on purpose"))
    train, test = digits
    out = tmp_path / "bench"
    result = invoke(
        cli,
        "bench",
        "-m",
        resnet_ckpt,
        "-d",
        train,
        "-f",
        class_forget_file,
        "--by",
        "class",
        "--test-data",
        test,
        "--methods",
        "boom,finetune",
        "--retrain-epochs",
        1,
        "--epochs",
        1,
        "-o",
        out,
    )
    assert result.exit_code == 0, result.stderr
    assert "boom" in result.stdout and "failed" in result.stdout  # the rich table
    data = json.loads((out / BENCH_JSON).read_text())
    summary = {row["method"]: row for row in data["summary"]}
    assert summary["boom"]["status"] == "failed"
    assert summary["boom"]["errors"] == [f"seed 0: RuntimeError: {MESSAGE}"]
    assert summary["finetune"]["status"] == "ok" and summary["finetune"]["avg_gap_pp"]["mean"] is not None
    assert summary[REFERENCE]["status"] == "ok" and summary[REFERENCE]["time_s"]["mean"] > 0
    assert data["reference"]["source"] == "retrain"
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["finetune-s0", "retrain-s0"]
    assert "boom seed 0: RuntimeError: " + MESSAGE in (out / BENCH_MD).read_text()


@pytest.mark.parametrize(
    "extra,message",
    [
        (("--methods", "nope"), "unknown method"),
        (("--methods", "retrain"), "is the reference"),
        (("--seeds", "0,0"), "distinct"),
        (("--seeds", "a"), "integers"),
        (("--methods", "rfau", "--set", "class_slopes=horse:2"), "the model has no class 'horse'"),
        (("--methods", "finetune", "--same-time-as", "rfau"), "--same-time-as rfau: not one of the methods"),
        (("--methods", "rfau", "--same-time-as", "rfau"), "needs another method"),
    ],
)
def test_bench_bad_input_is_exit_2_and_writes_nothing(
    cli, digits, resnet_ckpt, class_forget_file, tmp_path, extra, message
):
    train, test = digits
    out = tmp_path / "bench"
    result = invoke(
        cli, "bench", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--test-data", test, "-o", out, *extra
    )
    assert result.exit_code == 2
    assert message in result.stderr
    assert not out.exists()


def test_same_time_plan_known_numbers():
    """Epochs that fill the anchor's mean time after the method's own setup, from its default runs;
    a method without gradient steps, or without a successful run, is left out with its reason."""
    def run(method: str, setup: float, fit: float, epochs: int, steps: int = 9) -> dict:
        return {"method": method, "status": "ok", "time_s": setup + fit, "setup_s": setup, "fit_s": fit,
            "epochs_run": epochs, "steps": steps}  # fmt: skip

    runs = [
        run("rfau", 2.0, 6.0, 40),
        run("rfau", 2.0, 8.0, 31),  # target 9 s
        run("finetune", 1.0, 2.0, 5),  # setup 1 s, 0.4 s an epoch -> (9 - 1) / 0.4 = 20 epochs
        run("finetune", 1.0, 2.0, 5),
        run("scrub", 0.0, 30.0, 5),  # slower than rfau: fewer epochs than its default
        run("salun", 0.0, 90.0, 1),  # never below 1
        run("ssd", 0.5, 0.5, 1, steps=0),
        {"method": "neggrad-plus", "status": "failed", "error": "boom"},
    ]
    plan = plan_same_time(runs, "rfau", ["rfau", "finetune", "scrub", "salun", "ssd", "neggrad-plus"])
    assert plan["anchor"] == "rfau" and plan["target_s"] == pytest.approx(9.0)
    methods = plan["methods"]
    assert list(methods) == ["finetune", "scrub", "salun", "ssd", "neggrad-plus"]
    assert methods["finetune"] == {"epochs": 20, "default_epochs_run": 5.0, "per_epoch_s": 0.4, "setup_s": 1.0}
    assert methods["scrub"]["epochs"] == 2  # 9 s at 6 s an epoch: 1.5, rounded to even
    assert methods["salun"]["epochs"] == 1
    assert methods["ssd"]["epochs"] is None and "no gradient steps" in methods["ssd"]["reason"]
    assert methods["neggrad-plus"]["epochs"] is None and "no successful run" in methods["neggrad-plus"]["reason"]
    assert same_time_label("finetune", "rfau") == "finetune@rfau-time"

    failed_anchor = plan_same_time([{**runs[2]}, {"method": "rfau", "status": "failed"}], "rfau", ["rfau", "finetune"])
    assert failed_anchor["target_s"] is None and failed_anchor["methods"]["finetune"]["epochs"] is None


def test_bench_same_time_reruns_the_others_at_the_anchors_time(
    cli, digits, resnet_ckpt, class_forget_file, reference, tmp_path, monkeypatch
):
    """--same-time-as rfau: the plan is the formula applied to the default runs; finetune is rerun
    with the plan's epochs (forced to 3 here: on this tiny model the real plan is 1 epoch, which
    the default run also took, so a rerun that ignored the plan would pass); the one-shot SSD is
    left out and said so; the rows are judged like every other."""
    import copy

    from rfau_cli.commands import bench as bench_module

    real, seen = bench_module.plan_same_time, {}

    def forced(runs, anchor, methods):
        plan = real(runs, anchor, methods)
        seen["plan"] = copy.deepcopy(plan)
        plan["methods"]["finetune"]["epochs"] = 3
        return plan

    monkeypatch.setattr(bench_module, "plan_same_time", forced)
    train, test = digits
    out = tmp_path / "bench"
    options = ("--by", "class", "--methods", "rfau,finetune,ssd", "--reference", reference, "--epochs", 1)
    result = invoke(cli, "bench", "-m", resnet_ckpt, "-d", train, "-f", class_forget_file, "--test-data", test,
        *options, "--same-time-as", "rfau", "-o", out)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads((out / BENCH_JSON).read_text())
    plan = data["same_time"]
    rfau_time = [r["time_s"] for r in data["runs"] if r["method"] == "rfau"]
    assert plan["anchor"] == "rfau" and plan["target_s"] == pytest.approx(rfau_time[0], abs=1e-3)
    default = next(r for r in data["runs"] if r["method"] == "finetune")
    per_epoch = default["fit_s"] / default["epochs_run"]
    assert default["epochs_run"] == 1  # --epochs 1 reaches the default runs
    # the real plan, from the run records bench.json keeps
    real_epochs = seen["plan"]["methods"]["finetune"]["epochs"]
    assert real_epochs == max(1, round((plan["target_s"] - default["setup_s"]) / per_epoch))
    expected = plan["methods"]["finetune"]["epochs"]
    assert expected == 3
    assert plan["methods"]["ssd"]["epochs"] is None and "no gradient steps" in plan["methods"]["ssd"]["reason"]

    matched = [r for r in data["runs"] if r["method"] == "finetune@rfau-time"]
    assert len(matched) == 1  # one rerun a seed
    report = json.loads((out / matched[0]["dir"] / "report.json").read_text())
    assert report["method"] == "finetune" and report["training"]["epochs_run"] == expected
    matched = matched[0]
    assert matched["status"] == "ok" and matched["metrics"]["ua"] is not None
    summary = [row["method"] for row in data["summary"]]
    assert summary == [REFERENCE, NONE, "rfau", "finetune", "ssd", "finetune@rfau-time"]
    text = (out / BENCH_MD).read_text()
    assert f"Same time as rfau ({plan['target_s']:.1f} s a run" in text
    assert "finetune 3 epochs (1 at its defaults" in text
    assert "Left out: ssd (it takes no gradient" in text
    assert "| finetune@rfau-time |" in text
    assert "Same time as rfau" in result.stdout  # the printed table says it too


def test_bench_needs_test_data(cli, digits, resnet_ckpt, class_forget_file, tmp_path):
    result = invoke(cli, "bench", "-m", resnet_ckpt, "-d", digits[0], "-f", class_forget_file, "-o", tmp_path / "b")
    assert result.exit_code == 2
    assert "--test-data" in result.stderr


def _audit(ua: float, ra: float, ta: float, mia: float) -> dict:
    """The four numbers of the Avg. Gap, nested like an audit (fractions)."""
    return {"forget": {"ua": ua, "acc": 1 - ua}, "retain": {"acc": ra}, "test": {"acc": ta}, "mia": {"efficacy": mia}}


def test_floor_and_share_closed_known_numbers():
    a = _audit(0.04, 1.00, 0.95, 0.10)
    b = _audit(0.06, 1.00, 0.95, 0.14)  # gap to a: (2 + 0 + 0 + 4) / 4 = 1.5 pp
    c = _audit(0.04, 0.98, 0.97, 0.10)  # to a: (0 + 2 + 2 + 0) / 4 = 1.0; to b: (2 + 2 + 2 + 4) / 4 = 2.5
    floor = noise_floor([a, b, c], ["a", "b", "c"])
    assert [p["avg_gap_pp"] for p in floor["pairs"]] == pytest.approx([1.5, 1.0, 2.5])
    assert floor["n"] == 3 and floor["mean"] == pytest.approx(5 / 3)
    assert floor["std"] == pytest.approx(0.7637626, rel=1e-6)  # sample std of 1.5, 1.0, 2.5
    # Metric by metric, the same pairs: UA 2, 0, 2; RA 0, 2, 2; TA 0, 2, 2; MIA-efficacy 4, 0, 4.
    per_metric = {k: v["mean"] for k, v in floor["per_metric_pp"].items()}
    assert per_metric == pytest.approx({"ua": 4 / 3, "ra": 4 / 3, "ta": 4 / 3, "mia_efficacy": 8 / 3})
    assert floor["pairs"][0]["per_metric_pp"]["mia_efficacy"] == pytest.approx(4.0)
    # The avg gap is the mean of the four, pair by pair, so the floor is the mean of the per-metric floors.
    assert floor["mean"] == pytest.approx(sum(per_metric.values()) / 4)
    assert noise_floor([a], ["a"])["mean"] is None

    # gap of doing nothing 5 pp, floor 1 pp: 4 pp removable; a method at 2 pp closed 75% of it.
    assert removable_gap(5.0, 1.0) == 4.0
    assert share_closed(5.0, 2.0, 1.0) == pytest.approx(0.75)
    assert share_closed(5.0, 1.0, 1.0) == pytest.approx(1.0)
    assert share_closed(5.0, 5.0, 1.0) == 0.0
    assert share_closed(5.0, 7.0, 1.0) == pytest.approx(-0.5)  # worse than doing nothing
    assert share_closed(5.0, 2.0, None) is None  # no floor: one reference
    assert share_closed(1.0, 0.5, 1.5) is None  # nothing removable: doing nothing is within the floor


def _summary_row(method, ua, ra, ta, mia):
    return {"method": method, "per_metric_gap_pp": {
        k: {"mean": v, "std": 0.0, "n": 3} for k, v in (("ua", ua), ("ra", ra), ("ta", ta), ("mia_efficacy", mia))
    }}  # fmt: skip


def _bench_result(none, floor):
    """The parts of bench.json `describe` reads, for doing nothing's and the floor's per-metric gaps."""
    summary = [_summary_row(REFERENCE, *floor), _summary_row(NONE, *none)]
    none_gap, floor_gap = sum(none) / 4, sum(floor) / 4
    return {
        "seeds": [0, 1, 2], "reference": {"source": "retrain", "seeds": [0, 1, 2], "labels": []}, "audit_seed": 0,
        "floor": {"mean": floor_gap, "std": 0.1, "n": 3}, "none": {"avg_gap_pp": {"mean": none_gap, "std": 0.1}},
        "removable_gap_pp": removable_gap(none_gap, floor_gap), "removable_by_metric_pp": removable_by_metric(summary),
    }  # fmt: skip


def test_the_removable_gap_metric_by_metric_tells_forgetting_from_standing():
    """A weaker seed's TA gap is no memory of D_f: the bench says where the removable gap lies."""
    # A 5-row request the original gets right, as its retrains do (measured on MiniLM): UA and
    # MIA-efficacy at the floor, all of the removable gap its TA gap, 2.3 points above the floor's.
    standing = _bench_result(none=(0.0, 1.4, 2.7, 0.0), floor=(0.0, 1.26, 0.42, 0.0))
    parts = standing["removable_by_metric_pp"]
    assert parts == pytest.approx({"ua": 0.0, "ra": 0.14, "ta": 2.28, "mia_efficacy": 0.0})
    assert sum(parts.values()) / 4 == pytest.approx(standing["removable_gap_pp"])  # the parts add up
    text = describe(standing)[2]
    assert "UA +0.00, MIA-efficacy +0.00, RA +0.14, TA +2.28 pp" in text
    assert "Nothing about D_f is left to remove" in text and "does not measure forgetting" in text

    # Doing nothing within the floor: no share, whatever the parts.
    within = _bench_result(none=(0.0, 2.0, 1.0, 1.0), floor=(9.0, 1.0, 1.2, 8.0))
    assert within["removable_by_metric_pp"] == pytest.approx({"ua": -9.0, "ra": 1.0, "ta": -0.2, "mia_efficacy": -7.0})
    assert within["removable_gap_pp"] < 0 and "share closed is n/a" in describe(within)[2]
    # A memorised request: the forgotten rows carry the gap, and nothing is added.
    memorised = _bench_result(none=(20.0, 0.5, 3.0, 25.0), floor=(2.0, 0.5, 1.0, 3.0))
    text = describe(memorised)[2]
    assert "UA +18.00, MIA-efficacy +22.00, RA +0.00, TA +2.00 pp." in text
    assert "Nothing about D_f" not in text and "Most of it" not in text

    # Mostly standing, some forgetting: read with the per-metric table.
    mixed = _bench_result(none=(1.0, 2.0, 4.0, 1.5), floor=(0.5, 0.5, 0.5, 1.0))
    assert "Most of it is the original's standing" in describe(mixed)[2]

    # One reference: no floor, nothing to split.
    assert removable_by_metric([_summary_row(NONE, 1, 1, 1, 1), {"method": REFERENCE, "per_metric_gap_pp": {
        k: {"mean": None, "std": None, "n": 0} for k in ("ua", "ra", "ta", "mia_efficacy")}}]) is None  # fmt: skip


def test_bench_reference_seeds_floor_none_and_share(cli, digits, resnet_ckpt, sample_forget_file, tmp_path):
    """Two retrained references: the floor, the "none" row and the share closed in json and md."""
    train, test = digits
    out = tmp_path / "bench"
    result = invoke(
        cli,
        "bench",
        "-m",
        resnet_ckpt,
        "-d",
        train,
        "-f",
        sample_forget_file,
        "--test-data",
        test,
        "--methods",
        "finetune",
        "--reference-seeds",
        "0,1",
        "--retrain-epochs",
        2,
        "--epochs",
        1,
        "-o",
        out,
        "--quiet",
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads((out / BENCH_JSON).read_text())
    assert data["reference"]["source"] == "retrain" and data["reference"]["seeds"] == [0, 1]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["finetune-s0", "retrain-s0", "retrain-s1"]
    floor = data["floor"]
    assert floor["n"] == 1 and floor["mean"] is not None and floor["mean"] >= 0
    assert [(p["a"], p["b"]) for p in floor["pairs"]] == [("retrain-s0", "retrain-s1")]

    summary = {row["method"]: row for row in data["summary"]}
    assert list(summary) == [REFERENCE, NONE, "finetune"]
    assert summary[REFERENCE]["avg_gap_pp"]["mean"] == pytest.approx(floor["mean"])
    none = next(r for r in data["runs"] if r["method"] == NONE)
    assert none["gap"]["avg_gap_pp"] == pytest.approx(data["none"]["avg_gap_pp"]["mean"])
    assert [g["reference"] for g in none["gap"]["per_reference"]] == ["retrain-s0", "retrain-s1"]
    assert data["removable_gap_pp"] == pytest.approx(none["gap"]["avg_gap_pp"] - floor["mean"])
    parts = data["removable_by_metric_pp"]
    assert set(parts) == {"ua", "ra", "ta", "mia_efficacy"}
    assert sum(parts.values()) / 4 == pytest.approx(data["removable_gap_pp"])

    run = next(r for r in data["runs"] if r["method"] == "finetune")
    per_ref = [g["avg_gap_pp"] for g in run["gap"]["per_reference"]]
    assert len(per_ref) == 2 and run["gap"]["avg_gap_pp"] == pytest.approx(sum(per_ref) / 2)
    ref_auc = data["reference_loss_auc"]
    assert run["gap"]["loss_auc_gap"] == pytest.approx(abs(run["metrics"]["loss_auc"] - ref_auc))
    if data["removable_gap_pp"] > 0:
        expected = (none["gap"]["avg_gap_pp"] - run["gap"]["avg_gap_pp"]) / data["removable_gap_pp"]
        assert run["gap"]["share_closed"] == pytest.approx(expected)
        assert summary["finetune"]["share_closed"]["mean"] == pytest.approx(expected)
    else:
        assert run["gap"]["share_closed"] is None

    assert data["class_slope"] == {"classes": [], "rfau_used": None}  # a random 10%, and no RFAU
    # nor a class the request took most of: no test rows split by class in bench.md, and every row's
    # test accuracy outside such classes is its whole test accuracy
    assert "Test accuracy on the classes the request takes" not in (out / BENCH_MD).read_text()
    for row in summary.values():
        assert row["ta_concentrated"]["mean"] is None and row["ta_others"]["mean"] == row["ta"]["mean"]

    # The original's draw against its references' on unseen rows, and the setting that passes the
    # references on to later requests: it names the retrains where the bench left them, and works.
    unseen = data["unseen_rows"]
    refs = [r for r in data["runs"] if r["method"] == REFERENCE]
    assert unseen["paths"] == [str((out / "runs" / f"retrain-s{s}").resolve()) for s in (0, 1)]
    assert unseen["test_error"] == pytest.approx(1 - none["metrics"]["ta"], abs=1e-3)
    assert unseen["references_test_error"] == pytest.approx(1 - sum(r["metrics"]["ta"] for r in refs) / 2, abs=1e-3)
    setting = f"test_margins_from={','.join(unseen['paths'])}"
    assert "Unseen rows: the original gets" in (out / BENCH_MD).read_text() and setting in (out / BENCH_MD).read_text()
    assert unseen["peers_among_references"] == []
    later = invoke(cli, "unlearn", "-m", resnet_ckpt, "-d", train, "-f", sample_forget_file, "--test-data", test,
                   "--epochs", 1, "--set", setting, "-o", tmp_path / "later", "--quiet", "--json")  # fmt: skip
    assert later.exit_code == 0, later.stderr
    used = json.loads(later.stdout)["training"]["test_margins_from"]
    assert used["test_error"] == pytest.approx(unseen["references_test_error"], abs=1e-3)

    # The avg gap split into its four metrics: the floor's from the pair, none's and the method's
    # averaged over the two references, each the mean of what the runs hold.
    pair = floor["pairs"][0]["per_metric_pp"]
    assert {k: v["mean"] for k, v in floor["per_metric_pp"].items()} == pytest.approx(
        {k: pair[k] for k in ("ua", "ra", "ta", "mia_efficacy")}
    )
    assert summary[REFERENCE]["per_metric_gap_pp"] == floor["per_metric_pp"]
    for name, run_ in (("finetune", run), (NONE, none)):
        per_metric = summary[name]["per_metric_gap_pp"]
        for key in ("ua", "ra", "ta", "mia_efficacy"):
            by_ref = [g["per_metric_pp"][key] for g in run_["gap"]["per_reference"]]
            assert per_metric[key]["mean"] == pytest.approx(sum(by_ref) / 2)
        assert sum(v["mean"] for v in per_metric.values()) / 4 == pytest.approx(run_["gap"]["avg_gap_pp"])

    text = (out / BENCH_MD).read_text()
    assert "Class slope measured" not in text
    assert "Floor (mean avg gap between 1 pair of references)" in text
    assert f"{floor['mean']:.2f}" in text
    main, per_metric_table = text.split("Gap to the references per metric")
    assert (
        sum(line.startswith(("| retrain (reference)", "| none (original)", "| finetune")) for line in main.splitlines())
        == 3
    )
    rows = {line.split(" | ")[0][2:]: line for line in per_metric_table.splitlines() if line.startswith("| ")}
    assert list(rows)[1:] == ["floor (between references)", "none (original)", "finetune"]  # after the header
    assert f"{floor['per_metric_pp']['mia_efficacy']['mean']:.2f}" in rows["floor (between references)"]
    assert (out / BENCH_PNG).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unseen_rows_say_which_draw_the_original_is():
    """Known numbers: 4 test rows, margins from logits; the verdict follows the error rates' gap
    against one standard error, and the setting is offered only for paths it can carry."""
    import numpy as np

    from rfau_cli.methods.peer_margins import describe_unseen, unseen_rows

    labels = np.array([0, 1, 0, 1])

    def logits(*margin: float) -> np.ndarray:  # each row's margin is the number given
        return np.stack([np.where(labels == 0, margin, 0.0), np.where(labels == 1, margin, 0.0)], 1)

    weak, strong = logits(2.0, -1.0, -3.0, 4.0), logits(2.0, 1.0, 3.0, 4.0)
    block = unseen_rows(weak, [strong, strong], labels, ["/r/a", "/r/b"])
    assert block["test_error"] == 0.5 and block["references_test_error"] == 0.0
    assert block["median_margin"] == 0.5 and block["references_median_margin"] == 2.5
    text = describe_unseen(block)
    assert "a weaker draw of its recipe" in text and "`--set test_margins_from=/r/a,/r/b`" in text
    assert "a stronger draw" in describe_unseen(unseen_rows(strong, [weak], labels, ["/r/a"]))
    assert "as many as its references" in describe_unseen(unseen_rows(weak, [weak], labels, ["/r/a"]))
    assert "--set" not in describe_unseen(unseen_rows(weak, [strong], labels, ["/r/a,b"]))
    assert unseen_rows(weak, [], labels, []) is None and describe_unseen(None) is None
    judged = describe_unseen({**block, "peers_among_references": ["/r/a"]})
    assert "judged against models that set its targets" in judged
    assert "judged against" not in text


def test_bench_measures_the_class_slope_of_a_concentrated_request(cli, digits, resnet_ckpt, tmp_path):
    """Two thirds of digit 3's rows: the references' fall on digit 3's test rows against label shift is
    the class slope, reported next to the one RFAU ran with, so a user can pass the measured one on."""
    import datasets
    import numpy as np

    train, test = digits
    labels = np.asarray(datasets.load_from_disk(str(train))["label"])
    threes = np.flatnonzero(labels == 3)
    forget = tmp_path / "forget.txt"
    taken = threes[: 2 * len(threes) // 3]
    forget.write_text("\n".join(map(str, taken)) + "\n")
    out = tmp_path / "bench"
    result = invoke(cli, "bench", "-m", resnet_ckpt, "-d", train, "-f", forget, "--test-data", test, "--methods",
                    "rfau", "--reference-seeds", "0,1", "--retrain-epochs", 2, "--epochs", 1, "--set",
                    "class_slope=2", "-o", out, "--quiet")
    assert result.exit_code == 0, result.stderr
    block = json.loads((out / BENCH_JSON).read_text())["class_slope"]
    assert block["rfau_used"] == 2.0
    (three,) = block["classes"]
    assert three["class"] == 3 and three["share_forgotten"] == pytest.approx(len(taken) / len(threes))
    assert len(three["retrain_fall_per_reference"]) == 2
    assert three["retrain_fall"] == pytest.approx(np.mean(three["retrain_fall_per_reference"]))
    assert three["label_shift"] < -0.9  # log(1/3) against runner-ups that kept nearly all their rows
    assert three["slope"] == pytest.approx(three["retrain_fall"] / three["label_shift"])
    text = (out / BENCH_MD).read_text()
    share = f"{100 * len(taken) / len(threes):.0f}%"
    assert f"Class slope measured: class 3 ({share} of its rows forgotten)" in text
    assert three["rfau_used"] == 2.0
    # RFAU also took half the original's surplus on digit 3 off the class's fall (class_shrink 0.5)
    assert three["rfau_surplus"] == pytest.approx(0.5 * three["original_surplus"]) and three["rfau_surplus"] != 0
    advice = "RFAU used class_slope 2, less a share of the original's surplus surety of the class (3: "
    advice += f"{three['rfau_surplus']:+.2f} of {three['original_surplus']:+.2f} logits)"
    advice += "; for later requests concentrated in this class: "
    advice += f"--set class_slopes=3:{three['slope']:.1f}."
    assert advice in text
    assert "Class slope measured" in result.stdout
    # test accuracy split by the class the request took most of, for every row, against the original's
    summary = {row["method"]: row for row in json.loads((out / BENCH_JSON).read_text())["summary"]}
    assert all(row["ta_concentrated"]["mean"] is not None and row["ta_others"]["mean"] is not None
               for row in summary.values())
    lines = {line.split(" | ")[0]: line for line in text.splitlines() if line.startswith("| ") and line.count("|") == 4}
    assert "Test accuracy on the classes the request takes 30% or more of (3)" in text
    none, rfau = summary[NONE], summary["rfau"]
    change = 100 * (rfau["ta_others"]["mean"] - none["ta_others"]["mean"])
    assert f"{100 * rfau['ta_others']['mean']:.2f} ({change:+.2f})" in lines["| rfau"]
    # asked to follow its own test rows with no slope given, RFAU ran on the class prior alone and took no surplus
    following = tmp_path / "following"
    result = invoke(cli, "bench", "-m", resnet_ckpt, "-d", train, "-f", forget, "--test-data", test, "--methods",
                    "rfau", "--reference", out / "runs" / "retrain-s0", "--reference", out / "runs" / "retrain-s1",
                    "--epochs", 1, "--set", "follow_test_rows=true", "--set",
                    f"test_margins_from={out / 'runs' / 'retrain-s0'}", "-o", following, "--quiet")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads((following / BENCH_JSON).read_text())
    block = data["class_slope"]
    assert block["rfau_used"] == 1.0 and block["classes"][0]["rfau_used"] == 1.0
    assert block["classes"][0]["rfau_surplus"] == 0.0 and block["classes"][0]["original_surplus"] != 0
    # RFAU's peers were one of the references that judge it: the bench says so
    assert data["unseen_rows"]["peers_among_references"] == [str((out / "runs" / "retrain-s0").resolve())]
    assert "judged against models that set its targets" in (following / BENCH_MD).read_text()


def test_bench_reference_and_reference_seeds_exclude_each_other(cli, digits, resnet_ckpt, sample_forget_file, tmp_path):
    train, test = digits
    out = tmp_path / "bench"
    result = invoke(
        cli,
        "bench",
        "-m",
        resnet_ckpt,
        "-d",
        train,
        "-f",
        sample_forget_file,
        "--test-data",
        test,
        "--reference",
        resnet_ckpt,
        "--reference-seeds",
        "0,1",
        "-o",
        out,
    )
    assert result.exit_code == 2 and "--reference-seeds" in result.stderr
    assert not out.exists()


def _scenarios_module(monkeypatch):
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "scenarios.py"
    spec = importlib.util.spec_from_file_location("scenarios", path)
    scenarios = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "scenarios", scenarios)  # dataclasses look their module up there
    spec.loader.exec_module(scenarios)
    return scenarios


def test_scenario_forget_sets_sizes_and_concentration(monkeypatch):
    """benchmarks/scenarios.py: r1/r10 are uniform 1%/10%; c10 is 10% with 60% from one class."""
    import numpy as np

    scenarios = _scenarios_module(monkeypatch)
    labels = np.repeat(np.arange(10), 100)
    assert len(scenarios.forget_rows(labels, "r1", 3)) == 10
    r10 = scenarios.forget_rows(labels, "r10", 3)
    assert len(r10) == 100 and len(set(r10)) == 100
    c10 = scenarios.forget_rows(labels, "c10", 3)
    assert len(c10) == 100 and len(set(c10)) == 100
    assert (labels[c10] == 3).sum() == 60
    assert scenarios.parse_scenarios("vit,resnet-mem-r1") == ["vit-r1", "vit-r10", "vit-c10", "resnet-mem-r1"]
    # the held-out models run by name only, and no bench model shares their recipe
    assert "resnet-2k-mem-c10" in scenarios.parse_scenarios("resnet-2k-mem")
    assert "minilm-720-r10" in scenarios.parse_scenarios("minilm-720")
    held = scenarios.parse_scenarios("resnet-mid-r10,vit-x3")
    assert held == ["resnet-mid-r10", "vit-x3-r1", "vit-x3-r10", "vit-x3-c10"]
    assert not set(scenarios.HELD_OUT) & set(scenarios.DEFAULT_MODELS)
    recipe = lambda spec: (spec.arch, spec.data, spec.epochs, spec.lr, spec.batch_size)  # noqa: E731
    tuned = {recipe(scenarios.MODELS[m]) for m in scenarios.DEFAULT_MODELS}
    assert all(recipe(scenarios.MODELS[m]) not in tuned for m in scenarios.HELD_OUT)


def test_scenario_whole_image_forget_set_takes_every_copy(monkeypatch, tmp_path):
    """g10 takes whole images of the grown digits (every copy, none split between D_f and D_r), about
    10% of the rows, by name only and only where rows have images to group by."""
    import datasets
    import numpy as np

    from rfau_cli import toy

    scenarios = _scenarios_module(monkeypatch)
    train, _ = toy.grown_digits_datasets(tmp_path / "grown", copies=3)
    table = datasets.load_from_disk(str(train))
    sources, labels = np.asarray(table["source"]), np.asarray(table["label"])
    assert np.bincount(sources)[np.unique(sources)].tolist() == [3] * len(np.unique(sources))  # 3 copies each
    g10 = scenarios.forget_rows(labels, "g10", 3, seed=0, sources=sources)
    taken = np.isin(sources, sources[g10])
    assert taken.sum() == len(g10)  # every copy of a taken image is forgotten, no copy of it kept
    assert abs(len(g10) - 0.1 * len(labels)) < 3
    assert not np.array_equal(g10, scenarios.forget_rows(labels, "g10", 3, seed=1, sources=sources))
    assert scenarios.parse_scenarios("vit-g10") == ["vit-g10"]
    assert "vit-g10" not in scenarios.parse_scenarios("vit")  # the three by default
    with pytest.raises(SystemExit):
        scenarios.parse_scenarios("minilm-g10")  # sentences are not grown from images


def test_scenarios_report_the_spread_over_forget_sets_and_originals(monkeypatch):
    """Several draws (forget sets x originals): a cell is the mean of each draw's mean over method
    seeds, ± the spread over draws; the pooled share weighs each draw by its removable gap (a
    forget set whose retrains barely differ from the original says little); a failed draw is
    listed."""
    import numpy as np
    import pytest

    scenarios = _scenarios_module(monkeypatch)

    def bench(gap_none, gap_rfau, floor, ta_none, ta_rfau):
        stat = lambda m: {"mean": m, "std": 0.01, "n": 3}  # noqa: E731
        row = lambda method, gap, ta: {  # noqa: E731
            "method": method, "status": "ok", "avg_gap_pp": stat(gap),
            "share_closed": stat((gap_none - gap) / (gap_none - floor)),
            "loss_auc": stat(0.5), "loss_auc_gap": stat(0.01), "ta": stat(ta), "time_s": stat(1.0),
            # the four metrics' gaps, whose mean is the avg gap, as rfau bench splits it
            "per_metric_gap_pp": {
                k: stat(gap * w) for k, w in zip(("ua", "ra", "ta", "mia_efficacy"), (0.5, 1, 1, 1.5), strict=True)
            },
        }  # fmt: skip
        return {
            "status": "ok",
            "bench": {
                "floor": {"mean": floor, "std": 0.5, "n": 3},
                "summary": [row("none", gap_none, ta_none), row("rfau", gap_rfau, ta_rfau)],
            },
        }

    runs = {
        (0, 1000): bench(5.0, 1.4, 1.0, 0.80, 0.78),  # removable 4.0, 90% closed
        (0, 1001): bench(5.0, 3.0, 1.0, 0.76, 0.75),  # 50%
        (1, 1000): bench(2.0, 1.0, 1.5, 0.80, 0.79),  # removable 0.5: 200%, mostly noise
        (1, 1001): {"status": "failed", "error": "boom"},
    }
    rows = {r["method"]: r for r in scenarios.across_draws("vit-r10", runs)}
    rfau = rows["rfau"]
    assert rfau["draws"] == [[0, 1000], [0, 1001], [1, 1000]]
    assert rfau["share_closed"]["per_draw"] == pytest.approx([0.9, 0.5, 2.0])
    assert rfau["share_closed"]["mean"] == pytest.approx(3.4 / 3)
    # pooled: (3.6 + 2.0 + 1.0) / (4.0 + 4.0 + 0.5): the small-gap draw barely moves it
    assert rfau["share_closed"]["pooled"] == pytest.approx(6.6 / 8.5)
    assert rfau["ta_change_pp"]["mean"] == pytest.approx(-4 / 3)  # each against its own original
    assert rows["(bench failed)"]["scenario"] == "vit-r10 (forget-1, original-1001)"
    table = scenarios.render_table(list(rows.values()))
    assert "pooled share (%)" in table and "| 78 | f0: 90, 50; f1: 200 |" in table
    # a draw whose retrains disagree more than the original differs from them has nothing to remove
    noisy = {**runs, (2, 1000): bench(2.0, 1.0, 3.0, 0.80, 0.79)}
    rows = {r["method"]: r for r in scenarios.across_draws("vit-r10", noisy)}
    assert rows["rfau"]["share_closed"]["pooled"] == pytest.approx(6.6 / 8.5)
    # one forget set, several originals: the per-draw column lists originals only
    two = {d: r for d, r in runs.items() if d[0] == 0}
    assert "| 70 | 90, 50 |" in scenarios.render_table(scenarios.across_draws("vit-r10", two))
    one = scenarios.across_draws("vit-r10", {(0, 1000): runs[(0, 1000)]})
    assert "per_draw" not in one[1]["share_closed"]  # one draw: the bench's own rows
    # per metric: the mean over the draws that ran, ± the spread over them, in a second table
    rows = {r["method"]: r for r in scenarios.across_draws("vit-r10", runs)}
    split = rows["rfau"]["per_metric_gap_pp"]
    assert split["ua"]["mean"] == pytest.approx(0.5 * 5.4 / 3) and split["mia_efficacy"]["n"] == 3
    assert split["mia_efficacy"]["std"] == pytest.approx(np.std([2.1, 4.5, 1.5]))
    per_metric = scenarios.render_per_metric(list(rows.values()))
    assert "| MIA-efficacy gap (pp) |" in per_metric.splitlines()[0]
    assert "| vit-r10 | rfau | 0.90 ± 0.43 | 1.80 ± 0.86 | 1.80 ± 0.86 | 2.70 ± 1.30 |" in per_metric
    assert "(bench failed)" not in per_metric
    assert scenarios.render_per_metric([{**r, "per_metric_gap_pp": None} for r in rows.values()]) == ""


def test_scenarios_rank_the_methods_per_draw_and_per_forget_set(monkeypatch):
    """The issue's bar, counted: on how many draws a method has the lowest avg gap, or one within
    the lowest's spread over its seeds, and the same per forget set over its originals. A method
    that wins on one original and loses on the others wins that draw but not the forget set."""
    scenarios = _scenarios_module(monkeypatch)

    def bench(gaps):
        row = lambda method, gap, std: {  # noqa: E731
            "method": method, "status": "ok", "avg_gap_pp": {"mean": gap, "std": std, "n": 3},
            "share_closed": {"mean": None}, "loss_auc": None, "loss_auc_gap": None,
            "ta": {"mean": 0.8, "std": 0.0}, "time_s": None,
        }  # fmt: skip
        rows = [row("none", 10.0, None), row("retrain", 2.0, 0.1)] + [row(m, *g) for m, g in gaps.items()]
        return {"status": "ok", "bench": {"floor": {"mean": 2.0, "std": 0.1, "n": 3}, "summary": rows}}

    runs = {
        (0, 1000): bench({"rfau": (3.6, 0.3), "scrub": (3.0, 0.5)}),  # scrub lowest; rfau above 3.0 + 0.5
        (0, 1001): bench({"rfau": (3.0, 0.3), "scrub": (8.0, 0.5)}),
        (0, 1002): bench({"rfau": (3.2, 0.3), "scrub": (3.4, 0.5)}),  # rfau lowest, scrub within (3.5)
        (1, 1000): bench({"rfau": (2.5, 0.2), "scrub": (4.0, 0.5)}),
        (2, 1000): {"status": "failed", "error": "boom"},
    }
    rows = {r["method"]: r for r in scenarios.across_draws("vit-c10", runs)}
    assert "rank" not in rows["none"] and "rank" not in rows["retrain"]
    # draws: rfau lowest on 3 of the 4 that ran; scrub on 1, and within rfau's spread on another
    assert rows["rfau"]["rank"] == {
        "draws": 4, "lowest": 3, "within": 3, "lists": 1, "lists_lowest": 1, "lists_within": 1
    }  # fmt: skip
    # forget set 0 over its three originals: rfau 3.27 against scrub 4.8; set 1 has one original
    assert rows["scrub"]["rank"] == {
        "draws": 4, "lowest": 1, "within": 2, "lists": 1, "lists_lowest": 0, "lists_within": 0
    }  # fmt: skip
    table = scenarios.render_table(list(rows.values()))
    assert "lowest / within the lowest's spread |" in table.splitlines()[0]
    assert "| 3 / 3 of 4 draws; 1 / 1 of 1 forget sets |" in table
    assert "| 1 / 2 of 4 draws; 0 / 0 of 1 forget sets |" in table
    # a draw without a share (nothing removable) stays in its place in the per-draw column
    assert rows["rfau"]["share_closed"]["per_draw"] == [None] * 4
    assert "| 87 | f0: n/a, n/a, n/a; f1: n/a |" in table  # pooled from the gaps: (40 - 12.3) / (40 - 8)
    # one method alone is not ranked, and the table keeps its columns
    alone = {d: r for d, r in runs.items() if r["status"] == "ok"}
    for run in alone.values():
        run["bench"]["summary"] = [r for r in run["bench"]["summary"] if r["method"] != "scrub"]
    rows = scenarios.across_draws("vit-c10", alone)
    assert not any("rank" in r for r in rows)
    assert "lowest / within" not in scenarios.render_table(rows)


def test_scenarios_forget_sets_are_seeded_files(monkeypatch, tmp_path):
    """Seed 0 keeps the plain file name (caches built before forget seeds); another seed draws
    other rows, the same kind of set; a request concentrated in another class is its own list."""
    import datasets
    import numpy as np

    scenarios = _scenarios_module(monkeypatch)
    labels = np.repeat(np.arange(10), 100)
    datasets.Dataset.from_dict({"label": labels.tolist()}).save_to_disk(str(tmp_path / "train"))
    spec = scenarios.MODELS["resnet-fit"]
    plain = scenarios.write_forget(tmp_path, spec, tmp_path / "train", "c10")
    other = scenarios.write_forget(tmp_path, spec, tmp_path / "train", "c10", 1)
    assert plain.name == "digits-x3-c10.txt" and other.name == "digits-x3-c10-f1.txt"

    def rows(path):
        return np.array([int(line) for line in path.read_text().splitlines() if line and not line.startswith("#")])

    a, b = rows(plain), rows(other)
    assert len(a) == len(b) == 100 and not np.array_equal(a, b)
    assert (labels[a] == 3).sum() == (labels[b] == 3).sum() == 60
    # `--concentrated-class`: another class, its own file; the default class keeps the plain name
    six = scenarios.write_forget(tmp_path, spec, tmp_path / "train", "c10", 0, 6)
    assert six.name == "digits-x3-c10-class6.txt" and "(class 6)" in six.read_text().splitlines()[0]
    assert (labels[rows(six)] == 6).sum() == 60 and len(rows(six)) == 100
    assert scenarios.write_forget(tmp_path, spec, tmp_path / "train", "c10", 0, 3) == plain
    assert scenarios.write_forget(tmp_path, spec, tmp_path / "train", "r10", 0, 6).name == "digits-x3-r10.txt"
    with pytest.raises(SystemExit, match="--concentrated-class 12"):
        scenarios.write_forget(tmp_path, spec, tmp_path / "train", "c10", 0, 12)


def test_scenarios_peers_give_rfau_another_forget_sets_retrains(monkeypatch, tmp_path):
    """`--peers`: each draw's RFAU runs again with `--set test_margins_from=` another request's
    retrains (never its own: a random request's, the next forget set's; a concentrated one's, the
    model's first random set's), judged against its own, and joins the draw as a row `rfau+peers`."""
    import argparse
    import subprocess
    from pathlib import Path

    scenarios = _scenarios_module(monkeypatch)
    calls = []

    def fake_run(cmd, stdout, stderr, check):  # the real CLI's outputs, as run_scenario reads them
        calls.append(cmd)
        out = Path(cmd[cmd.index("--out") + 1])
        if "test_margins_from=" in " ".join(cmd) and "original-1001" in str(out) and "forget-2" in str(out):
            return subprocess.CompletedProcess(cmd, 3)  # one peers bench fails
        references = "--reference-seeds" in cmd
        for s in (0, 1) if references else ():
            (out / "runs" / f"retrain-s{s}").mkdir(parents=True)
        out.mkdir(parents=True, exist_ok=True)
        gap = 1.0 if "test_margins_from=" in " ".join(cmd) else 2.0
        row = lambda m, g: {"method": m, "status": "ok", "avg_gap_pp": {"mean": g, "std": 0.1, "n": 2}}  # noqa: E731
        (out / "bench.json").write_text(json.dumps({"summary": [row("none", 5.0), row("rfau", gap)]}))
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(scenarios.subprocess, "run", fake_run)
    monkeypatch.setattr(
        scenarios, "write_forget", lambda cache, spec, train, kind, seed=0, major=None: tmp_path / f"f{seed}.txt"
    )
    args = argparse.Namespace(
        out=tmp_path / "out", seeds="0,1", reference_seeds="0,1", forget_seeds=[0, 1, 2], original_seeds=[1000, 1001],
        methods="rfau,finetune", same_time_as="rfau", bench_args="", cache=tmp_path,
    )  # fmt: skip
    (args.out / "logs").mkdir(parents=True)
    spec = scenarios.MODELS["resnet-fit"]
    inputs = {"models": {spec.name: {s: (tmp_path / f"m{s}", tmp_path / "train", tmp_path / "test", None)
                                     for s in (1000, 1001)}}}  # fmt: skip
    runs = scenarios.run_draws("resnet-fit-r10", args, inputs)
    scenarios.run_peer_draws("resnet-fit-r10", args, inputs, runs, {"resnet-fit-r10": runs})

    def retrains(forget_seed, name="resnet-fit-r10"):
        return [args.out / name / f"forget-{forget_seed}" / "original-1000" / "runs" / f"retrain-s{s}" for s in (0, 1)]

    peer_calls = [c for c in calls if "test_margins_from=" in " ".join(c)]
    assert len(peer_calls) == 6  # every draw once
    for cmd in peer_calls:
        out = Path(cmd[cmd.index("--out") + 1])
        forget_seed = int(out.parent.name.split("-")[1])
        assert out.name.endswith("-peers") and out.name.startswith("original-")
        assert cmd[cmd.index("--methods") + 1] == "rfau" and "--same-time-as" not in cmd
        given = cmd[cmd.index("--set") + 1]
        assert given == "test_margins_from=" + ",".join(map(str, retrains((forget_seed + 1) % 3)))
        judges = [Path(cmd[i + 1]) for i, a in enumerate(cmd) if a == "--reference"]
        assert judges == retrains(forget_seed)  # its own set's retrains judge it
    ok = runs[(0, 1001)]["bench"]["summary"]
    assert [r["method"] for r in ok] == ["none", "rfau", scenarios.PEERS_ROW]
    assert ok[-1]["avg_gap_pp"]["mean"] == 1.0 and ok[1]["avg_gap_pp"]["mean"] == 2.0
    assert "peers_error" in runs[(2, 1001)] and scenarios.PEERS_ROW not in [
        r["method"] for r in runs[(2, 1001)]["bench"]["summary"]
    ]
    # a concentrated request: the peers are the model's first random set's retrains, for every set
    concentrated = scenarios.run_draws("resnet-fit-c10", args, inputs)
    calls.clear()
    scenarios.run_peer_draws("resnet-fit-c10", args, inputs, concentrated, {"resnet-fit-c10": concentrated})
    assert calls == []  # no r10 ran before it: skipped
    scenarios.run_peer_draws("resnet-fit-c10", args, inputs, concentrated, {"resnet-fit-r10": runs})
    assert len(calls) == 6
    for cmd in calls:
        forget_seed = int(Path(cmd[cmd.index("--out") + 1]).parent.name.split("-")[1])
        assert cmd[cmd.index("--set") + 1] == "test_margins_from=" + ",".join(map(str, retrains(0)))
        judges = [Path(cmd[i + 1]) for i, a in enumerate(cmd) if a == "--reference"]
        assert judges == retrains(forget_seed, "resnet-fit-c10")
