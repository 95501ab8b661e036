"""rfau.toml: the design card's short command line works from a directory holding the file,
flags override it, bad files fail before any work, and `rfau config` says where each setting
came from. Also the default output directory and `rfau unlearn --require`."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import FORGET_CLASS, invoke

from rfau_cli.cli import app


def _rel(path: Path, start: Path) -> str:
    """`path` as the config file in `start` would spell it: relative to the file's directory."""
    return os.path.relpath(path, start)


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture()
def request_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of a deletion-request job: the forget list, the model under ./m/
    (so `--model m/model.safetensors` is the design card's spelling); the data lives elsewhere."""
    work = tmp_path / "job"
    work.mkdir()
    (work / "ids.txt").write_text(f"# deletion request 1\n{FORGET_CLASS}\n")
    monkeypatch.chdir(work)
    return work


def _link_model(resnet_ckpt: Path, work: Path) -> Path:
    (work / "m").symlink_to(resnet_ckpt, target_is_directory=True)
    return Path("m") / "model.safetensors"


def test_design_card_command_line_with_rfau_toml(resnet_ckpt, digits, request_dir, cli) -> None:
    """`rfau unlearn --model m.safetensors --forget ids.txt` with everything else from the file
    (data paths relative to the file); the output goes to rfau-out/<forget sha256[:12]>/."""
    (request_dir / "rfau.toml").write_text(
        f'data = "{_rel(digits[0], request_dir)}"\n'
        f'test_data = "{_rel(digits[1], request_dir)}"\n'
        'by = "class"\n'
        "[unlearn]\nepochs = 2\nsave = \"merged\"\nseed = 7\n"
        '[audit]\nrequire = ["forget.acc<=1", "test_retain.acc>=0.5"]\n'
    )
    model = _link_model(resnet_ckpt, request_dir)
    result = invoke(cli, "unlearn", "--model", model, "--forget", "ids.txt")
    assert result.exit_code == 0, result.stderr
    sha = hashlib.sha256((request_dir / "ids.txt").read_bytes()).hexdigest()
    out = request_dir / "rfau-out" / sha[:12]
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"]["forget_list_sha256"] == sha
    assert report["forget_classes"] == [FORGET_CLASS]  # by = "class" from the file
    assert report["seed"] == 7 and report["training"]["epochs_requested"] == 2
    assert report["outputs"]["save"] == "merged" and (out / "model.safetensors").is_file()
    assert "gate test_retain.acc>=0.5: held" in result.stderr  # [audit] require, applied by unlearn
    gates = [(g["expr"], g["passed"]) for g in report["gates"]]
    assert gates == [("forget.acc<=1", True), ("test_retain.acc>=0.5", True)]

    again = invoke(cli, "unlearn", "--model", model, "--forget", "ids.txt")
    assert again.exit_code == 2
    assert f"rfau-out/{sha[:12]} already exists" in again.stderr and "--out" in again.stderr


def test_pyproject_table_flags_override_and_failing_gate_keeps_output(
    resnet_ckpt, digits, request_dir, cli
) -> None:
    """[tool.rfau] of pyproject.toml; a flag beats the file (also for --require, which replaces
    the file's gates); the forget list from stdin names the default output; a failing gate
    exits 1 naming it, and the output stays."""
    (request_dir / "pyproject.toml").write_text(
        '[project]\nname = "requests"\n'
        "[tool.rfau]\n"
        f'data = "{digits[0]}"\ntest_data = "{digits[1]}"\nby = "class"\n'
        "[tool.rfau.unlearn]\nepochs = 5\nseed = 3\nsave = \"merged\"\n"
        '[tool.rfau.audit]\nrequire = ["forget.acc<=1"]\n'
    )
    model = _link_model(resnet_ckpt, request_dir)
    ids = f"{FORGET_CLASS}\n"
    result = cli.invoke(
        app,
        ["unlearn", "-m", str(model), "-f", "-", "--epochs", "1", "--quiet", "--json", "--require", "forget.acc>=1.5"],
        input=ids,
        catch_exceptions=False,
    )
    assert result.exit_code == 1, result.stderr
    assert "forget.acc>=1.5" in result.stderr and "forget.acc<=1 " not in result.stderr
    sha = hashlib.sha256(ids.encode()).hexdigest()
    report = json.loads(result.stdout)
    assert report["inputs"]["forget_list"] == "-" and report["inputs"]["forget_list_sha256"] == sha
    assert report["training"]["epochs_requested"] == 1  # the flag, not the file's 5
    assert report["seed"] == 3  # the file
    kept = request_dir / "rfau-out" / sha[:12]
    assert json.loads((kept / "report.json").read_text())["inputs"]["forget_list_sha256"] == sha
    assert f"the output in rfau-out/{sha[:12]} is kept" in result.stderr
    (gate,) = json.loads((kept / "report.json").read_text())["gates"]  # the verdict is on record
    assert gate["expr"] == "forget.acc>=1.5" and not gate["passed"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[unlearn]\nepocs = 3\n", "rfau.toml: [unlearn] epocs: unknown key (did you mean epochs?)"),
        ("epochs = 3\n", "rfau.toml: epochs: unknown key (it belongs in [unlearn])"),
        ("[unlearn]\nepochs = \"3\"\n", "rfau.toml: [unlearn] epochs: must be an integer"),
        ("by = \"klass\"\n", "rfau.toml: by: must be sample or class, not 'klass'"),
        ("data = \n", "rfau.toml: not valid TOML"),
        ("out = \"runs/{modle}\"\n", "rfau.toml: out: unknown placeholder {modle}"),
        ("[audit]\nrequire = [\"forget.acc<<1\"]\n", "rfau.toml: [audit] require: invalid gate expression"),
        ("[unlern]\nepochs = 3\n", "rfau.toml: [unlern]: unknown table (did you mean unlearn?)"),
        ("out = \"{model}/../..\"\n", "rfau.toml: out: '..' after a placeholder"),
        ("out = \"a/{forget_sha}/../../..\"\n", "rfau.toml: out: '..' after a placeholder"),
    ],
)
def test_bad_config_file_exits_2_naming_the_key(resnet_ckpt, request_dir, cli, text, expected) -> None:
    (request_dir / "rfau.toml").write_text(text)
    before = _listing(request_dir)
    result = invoke(cli, "unlearn", "--model", resnet_ckpt, "--forget", "ids.txt", "--out", "out")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("rfau: error: ") and expected in lines[0]
    assert _listing(request_dir) == before  # nothing written


@pytest.mark.parametrize("kind", ["a directory", "not UTF-8", "a directory given with --config"])
def test_unreadable_config_file_exits_2(kind, resnet_ckpt, request_dir, cli) -> None:
    path = request_dir / "rfau.toml"
    if kind == "not UTF-8":
        path.write_bytes(b'data = "\xff\xfe"\n')
    else:
        path.mkdir()
    before = _listing(request_dir)
    flags = ("--config", "rfau.toml") if "--config" in kind else ()
    result = invoke(cli, *flags, "unlearn", "--model", resnet_ckpt, "--forget", "ids.txt", "--out", "out")
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("rfau: error: rfau.toml: ")
    assert ("not UTF-8" if kind == "not UTF-8" else "is a directory") in line
    assert _listing(request_dir) == before


def test_templated_output_that_exists_is_refused_before_work(resnet_ckpt, digits, request_dir, cli) -> None:
    """An `out` without {forget_sha} names one directory for every request: the second is
    refused at once, naming the template."""
    (request_dir / "rfau.toml").write_text(f'data = "{digits[0]}"\nby = "class"\nout = "answers/{{model}}"\n')
    (request_dir / "answers" / resnet_ckpt.name).mkdir(parents=True)
    before = _listing(request_dir)
    result = invoke(cli, "unlearn", "--model", resnet_ckpt, "--forget", "ids.txt")
    assert result.exit_code == 2
    assert "already exists (the output `out = 'answers/{model}'` of rfau.toml names" in result.stderr
    assert _listing(request_dir) == before


def test_unknown_gate_key_fails_before_training(resnet_ckpt, digits, request_dir, cli) -> None:
    result = invoke(cli, "unlearn", "-m", resnet_ckpt, "-d", digits[0], "-f", "ids.txt", "--by", "class",
                    "--require", "forget.accuracy<=0.02", "-o", "out")
    assert result.exit_code == 2
    assert "unknown gate key 'forget.accuracy'" in result.stderr and "forget_all.acc" in result.stderr
    assert "epoch" not in result.stderr  # refused after the first audit, before any training
    assert _listing(request_dir) == ["ids.txt"]


def test_missing_data_names_the_flag_and_the_file(resnet_ckpt, request_dir, cli) -> None:
    result = invoke(cli, "unlearn", "--model", resnet_ckpt, "--forget", "ids.txt")
    assert result.exit_code == 2
    assert result.stderr.strip() == "rfau: error: --data is required (give the flag, or `data = ...` in rfau.toml)"
    assert _listing(request_dir) == ["ids.txt"]


def test_missing_config_flag_file_exits_2(resnet_ckpt, request_dir, cli) -> None:
    result = invoke(cli, "--config", "nope.toml", "unlearn", "--model", resnet_ckpt, "--forget", "ids.txt")
    assert result.exit_code == 2 and "nope.toml" in result.stderr


def test_config_shows_values_and_sources(resnet_ckpt, digits, request_dir, cli) -> None:
    """`rfau config` resolves like a run: a flag, the file (paths relative to it) or the default;
    `--config` (root or command) picks another file, whose `out` template is filled in."""
    ci = request_dir / "ci"
    ci.mkdir()
    (ci / "deletions.toml").write_text(
        'data = "data/train"\nout = "answered/{model}-{forget_sha}"\n[unlearn]\nepochs = 4\nlr = 1e-3\n'
    )
    args = ("config", "unlearn", "--model", resnet_ckpt, "--forget", "ids.txt", "--lr", "0.01", "--json")
    for call in (("--config", "ci/deletions.toml", *args), (*args, "--config", "ci/deletions.toml")):
        result = invoke(cli, *call)
        assert result.exit_code == 0, result.stderr
        view = json.loads(result.stdout)
        s = view["settings"]
        assert view["config_file"] == "ci/deletions.toml"
        assert (s["data"]["value"], s["data"]["from"]) == ("ci/data/train", "ci/deletions.toml")
        assert (s["epochs"]["value"], s["epochs"]["from"]) == (4, "ci/deletions.toml")
        assert (s["lr"]["value"], s["lr"]["from"]) == (0.01, "flag")
        assert (s["rank"]["value"], s["rank"]["from"]) == (8, "default")
        sha = hashlib.sha256((request_dir / "ids.txt").read_bytes()).hexdigest()
        assert s["out"]["value"] == f"ci/answered/{resnet_ckpt.name}-{sha[:12]}"
    table = invoke(cli, "config", "audit")  # ./rfau.toml: none here
    assert table.exit_code == 0
    assert "(none found)" in table.stdout and "--require" in table.stdout
    assert _listing(request_dir) == ["ci", "ci/deletions.toml", "ids.txt"]  # `rfau config` writes nothing


def test_require_bad_expression_exits_2_before_work(resnet_ckpt, digits, request_dir, cli) -> None:
    result = invoke(
        cli, "unlearn", "--model", resnet_ckpt, "--data", digits[0], "--forget", "ids.txt", "--by", "class",
        "--require", "forget.acc =< 0.02",
    )
    assert result.exit_code == 2
    assert "invalid gate expression 'forget.acc =< 0.02'" in result.stderr
    assert _listing(request_dir) == ["ids.txt"]  # no rfau-out/


def test_retrain_default_output(request_dir) -> None:
    """retrain's default sits beside unlearn's, so a reference retrain of the same request
    never collides with the answer."""
    from rfau_cli.config_file import planned_output

    sha = hashlib.sha256((request_dir / "ids.txt").read_bytes()).hexdigest()
    assert planned_output(None, Path("m"), "ids.txt", "-retrain") == Path("rfau-out") / f"{sha[:12]}-retrain"
