"""examples/ci: the shell script answers a deletion request on the toy model as a CI job
would (rfau.toml, the audit gates, the JSON read with jq or python), and fails when a gate does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FORGET_CLASS, invoke

CI = Path(__file__).resolve().parents[1] / "examples" / "ci"
SCRIPT = CI / "answer-deletion-request.sh"


def _run_script(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # where `rfau` is installed
    full_env = {
        **os.environ,
        "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        "PYTHON": sys.executable,
        "OMP_NUM_THREADS": "1",
        **env,
    }
    return subprocess.run(
        ["sh", str(SCRIPT), *args], cwd=work, env=full_env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_script_answers_a_request_and_fails_on_a_gate(resnet_ckpt, digits, tmp_path) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    (work / "rfau.toml").write_text(
        f'model = "{resnet_ckpt}"\ndata = "{digits[0]}"\ntest_data = "{digits[1]}"\nby = "class"\n'
        'out = "answers/{model}-{forget_sha}"\n'
        '[unlearn]\nepochs = 2\nsave = "merged"\n'
        '[audit]\nrequire = ["test_retain.acc>=0.5"]\n'
    )
    (work / "request-1.txt").write_text(f"{FORGET_CLASS}\n")
    done = _run_script(work, "request-1.txt")
    assert done.returncode == 0, done.stderr
    out = work / "answers" / f"{resnet_ckpt.name}-{_sha12(work / 'request-1.txt')}"
    report = json.loads((out / "report.json").read_text())
    assert f"output:          answers/{out.name}" in done.stdout
    assert f"rows forgotten:  {report['forget_count']}" in done.stdout
    after = report["metrics"]["after"]["forget"]["acc"]
    assert done.stdout.splitlines()[3].endswith(f"-> {after}")  # D_f accuracy, read from the JSON

    # A gate the model cannot meet; the JSON read without jq. Exit 1, the answer kept.
    (work / "request-2.txt").write_text(f"# second request\n{FORGET_CLASS}\n")
    failed = _run_script(work, "request-2.txt", REQUIRE="forget.acc>=1.5", RFAU_NO_JQ="1")
    assert failed.returncode == 1, failed.stderr
    assert "forget.acc>=1.5" in failed.stderr and "an audit gate failed" in failed.stderr
    kept = work / "answers" / f"{resnet_ckpt.name}-{_sha12(work / 'request-2.txt')}"
    assert (kept / "report.json").is_file()
    assert "rows forgotten:  " + str(report["forget_count"]) in failed.stdout


def test_example_config_is_valid(tmp_path, monkeypatch, cli) -> None:
    """The shipped rfau.toml passes the same checks a run applies (its paths need not exist)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ids.txt").write_text("0\n")
    result = invoke(cli, "--config", CI / "rfau.toml", "config", "unlearn", "--forget", "ids.txt", "--json")
    assert result.exit_code == 0, result.stderr
    settings = json.loads(result.stdout)["settings"]
    assert settings["require"]["value"] == ["mia.loss_auc<=0.6", "test_others.acc>=0.9"]
    assert settings["out"]["value"] == str(CI / "answers" / f"classifier-{_sha12(tmp_path / 'ids.txt')}")


def _sha12(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
