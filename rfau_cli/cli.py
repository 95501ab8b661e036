"""The `rfau` command line: each command parses flags into a frozen config, calls one
engine function and prints. No torch is imported here, so `rfau --help` answers at once."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from rfau_cli.errors import RfauError
from rfau_cli.options import (
    BatchOpt, ByOpt, DataOpt, DeviceOpt, EpochsOpt, ForgetOpt, IdColumnOpt, InputColumnOpt, JsonOpt,
    LabelColumnOpt, LrOpt, ModelOpt, OutDirOpt, PrecisionOpt, QuietOpt, RetainRatioOpt, SeedOpt, SplitOpt,
    TestDataOpt,
)

app = typer.Typer(
    name="rfau",
    help="Make a trained classifier forget chosen samples or classes, and show that it did.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        from rfau_cli import __version__

        typer.echo(f"rfau {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Make a trained classifier forget chosen samples or classes, and show that it did."""
    import warnings

    # Library deprecation chatter is not for users of a CLI; stderr is for progress.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Map RfauError (and gate parsing errors) to one stderr line and its exit code."""
    from rfau_cli.gates import GateSyntaxError, UnknownGateKeyError

    try:
        yield
    except RfauError as err:
        typer.echo(f"rfau: error: {err}", err=True)
        raise typer.Exit(err.exit_code) from None
    except (GateSyntaxError, UnknownGateKeyError) as err:
        message = err.args[0] if err.args else str(err)
        typer.echo(f"rfau: error: {message}", err=True)
        raise typer.Exit(2) from None


@app.command()
def unlearn(
    model: ModelOpt,
    data: DataOpt,
    forget: ForgetOpt,
    out: OutDirOpt,
    by: ByOpt = "sample",
    id_column: IdColumnOpt = None,
    split: SplitOpt = "train",
    test_data: TestDataOpt = None,
    input_column: InputColumnOpt = None,
    label_column: LabelColumnOpt = None,
    method: Annotated[str, typer.Option("--method", help="Unlearning method (see `rfau methods`).")] = "rfau",
    save: Annotated[str, typer.Option("--save", help="adapter, merged or both.")] = "both",
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank.")] = 8,
    alpha: Annotated[float, typer.Option("--alpha", help="LoRA alpha (scale = alpha / rank).")] = 16.0,
    gamma: Annotated[float, typer.Option("--gamma", help="Weight of the forget alignment loss.")] = 1.0,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = 32,
    retain_ratio: RetainRatioOpt = 4,
    target_modules: Annotated[
        Optional[str], typer.Option("--target-modules", help="Comma list of module names for LoRA (default: every body Linear/Conv2d).")
    ] = None,
    taps: Annotated[str, typer.Option("--taps", help="Feature taps: all, last, head, or indices like 0,-1,head.")] = "all",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Unlearn samples or classes from a checkpoint; write an adapter and/or merged weights + report.json.

    Examples:

      rfau unlearn --model ckpt/ --data train/ --forget ids.txt --test-data test/ --out unlearned/

      rfau unlearn --model ckpt/ --data train/ --forget classes.txt --by class --save merged --out forgot3/

      echo 3 | rfau unlearn -m ckpt/model.safetensors -d train.parquet -f - --by class -o out/ --json
    """
    from rfau_cli.settings import DataSettings, MethodSettings, RuntimeSettings, UnlearnConfig

    cfg = UnlearnConfig(
        model=model,
        out=out,
        data=DataSettings(data, forget, by, split, test_data, id_column, input_column, label_column),
        method=method,
        save=save,
        hparams=MethodSettings(
            epochs=epochs, lr=lr, rank=rank, alpha=alpha, gamma=gamma, batch_size=batch_size,
            retain_ratio=retain_ratio, target_modules=_split_list(target_modules), taps=taps, seed=seed,
        ),
        runtime=RuntimeSettings(device, precision, quiet, json_out),
    )
    with user_errors():
        from rfau_cli.unlearn import run_unlearn

        report = run_unlearn(cfg)
    _print_result(report, json_out, quiet)


@app.command()
def methods() -> None:
    """List the unlearning methods with a one-line summary each (no torch is imported).

    Example:

      rfau methods
    """
    from rfau_cli.methods import REGISTRY

    width = max(len(n) for n in REGISTRY)
    for name, (_, summary) in REGISTRY.items():
        typer.echo(f"{name:<{width}}  {summary}")


def _split_list(text: Optional[str]) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else ()


def _print_result(report: dict, json_out: bool, quiet: bool) -> None:
    from rfau_cli.report import dumps

    if json_out:
        sys.stdout.write(dumps(report) + "\n")
        return
    from rfau_cli.summary import print_unlearn_summary

    print_unlearn_summary(report)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
