"""The `rfau` command line: each command parses flags into a frozen config, calls one
engine function and prints. No torch is imported here, so `rfau --help` answers at once."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from rfau_cli.options import (
    AdapterOpt,
    AttacksOpt,
    AuditTestDataOpt,
    BatchOpt,
    BenchReferenceOpt,
    ByOpt,
    CacheMbOpt,
    ConfigOpt,
    DataOpt,
    DefaultOutDirOpt,
    DeviceOpt,
    EpochsOpt,
    ForgetOpt,
    GammaOpt,
    IdColumnOpt,
    InitOpt,
    InputColumnOpt,
    JsonOpt,
    LabelColumnOpt,
    LiraReferencesOpt,
    LrOpt,
    MethodsOpt,
    ModelOpt,
    OriginalOpt,
    OutDirOpt,
    OutFileOpt,
    PerSampleOpt,
    PrecisionOpt,
    QuietOpt,
    ReferenceDirOpt,
    ReferenceOpt,
    ReferenceSeedsOpt,
    RequireOpt,
    RetainRatioOpt,
    RetrainBatchSizeOpt,
    RetrainEpochsOpt,
    RetrainInitOpt,
    RetrainLrOpt,
    SameTimeOpt,
    SaveOpt,
    SeedOpt,
    SeedsOpt,
    SetOpt,
    SplitOpt,
    TestDataOpt,
    WorkersOpt,
)

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException as _ClickException
    from typer._click.exceptions import MissingParameter as _MissingParameter
    from typer._click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError
    from typer._click.exceptions import UsageError as _UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException as _ClickException
    from click.exceptions import MissingParameter as _MissingParameter
    from click.exceptions import NoArgsIsHelpError as _NoArgsIsHelpError
    from click.exceptions import UsageError as _UsageError

_DEBUG = [False]  # `rfau --debug` of the running invocation (set by the root callback)


class _RfauGroup(typer.core.TyperGroup):
    """Every command runs inside `user_errors`: no exception reaches a user as a traceback, and
    a usage error (unknown flag, a value not among a flag's choices) is one stderr line, exit 2."""

    def make_context(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        with _one_line_usage_errors(), user_errors(bool(ctx.params.get("debug"))):
            return super().invoke(ctx)


@contextlib.contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """Click's usage errors as `rfau: error: <message>` and exit 2 (instead of a boxed usage text)."""
    try:
        yield
    except _NoArgsIsHelpError:
        raise  # bare `rfau`: the help text
    except _UsageError as err:
        typer.echo(f"rfau: error: {usage_message(err)}", err=True)
        raise typer.Exit(2) from None


def usage_message(err: _UsageError) -> str:
    """One line for a click usage error; a value outside a flag's choices reads like our own checks."""
    import re

    message = " ".join(err.format_message().split())
    param = getattr(err, "param", None)
    if isinstance(err, _MissingParameter):
        from rfau_cli.options import missing_option_message

        return missing_option_message(err.ctx, param) or message
    outside = re.search(r"('[^']*'|\"[^\"]*\") is not one of (.+?)\.?$", message)
    if param is not None and outside:
        from rfau_cli.settings import choice_list

        option = max(param.opts, key=len)
        choices = re.findall(r"'([^']*)'", outside.group(2))
        return f"{option} must be {choice_list(choices)}, not {outside.group(1)}"
    return message


app = typer.Typer(
    name="rfau",
    help="Make a trained classifier forget chosen samples or classes, and show that it did.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_RfauGroup,
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
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, also print the traceback (same as RFAU_DEBUG=1).")
    ] = False,
    config: Annotated[
        Optional[Path],
        typer.Option(
            "--config",
            help="Config file for the command (default: ./rfau.toml, else the tool.rfau table of ./pyproject.toml).",
        ),
    ] = None,
) -> None:
    """Make a trained classifier forget chosen samples or classes, and show that it did."""
    import warnings

    _DEBUG[0] = debug

    # Library deprecation chatter is not for users of a CLI; stderr is for progress.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


@contextlib.contextmanager
def user_errors(debug: bool = False) -> Iterator[None]:
    """Map every error to one stderr line and its exit code (README, Exit codes).

    RfauError: its own message and code (2 bad input, 1 failed gate, 3 failed run); gate
    parsing errors: 2; any other exception: 3 with `Type: message`. `--debug` (or
    RFAU_DEBUG=1) prints the traceback before the line. Click's own exits pass through.
    """
    import traceback

    from rfau_cli.errors import debug_from_env, error_line, exit_code_of

    try:
        yield
    except (typer.Exit, typer.Abort, _ClickException, BrokenPipeError):
        raise  # click's own exits and usage errors; a closed stdout is typer's to handle
    except Exception as err:
        from rfau_cli.gates import GateSyntaxError, UnknownGateKeyError

        if debug or _DEBUG[0] or debug_from_env():
            traceback.print_exception(err, file=sys.stderr)
        if isinstance(err, (GateSyntaxError, UnknownGateKeyError)):
            message = err.args[0] if err.args else str(err)
            typer.echo(f"rfau: error: {message}", err=True)
            raise typer.Exit(2) from None
        typer.echo(error_line(err), err=True)
        raise typer.Exit(exit_code_of(err)) from None


@app.command()
def unlearn(
    ctx: typer.Context,
    model: ModelOpt,
    data: DataOpt,
    forget: ForgetOpt,
    out: DefaultOutDirOpt = None,
    by: ByOpt = "sample",
    id_column: IdColumnOpt = None,
    split: SplitOpt = "train",
    test_data: TestDataOpt = None,
    input_column: InputColumnOpt = None,
    label_column: LabelColumnOpt = None,
    method: Annotated[str, typer.Option("--method", help="Unlearning method (see `rfau methods`).")] = "rfau",
    save: SaveOpt = "both",
    rank: Annotated[int, typer.Option("--rank", help="LoRA rank.")] = 8,
    alpha: Annotated[float, typer.Option("--alpha", help="LoRA alpha (scale = alpha / rank).")] = 16.0,
    gamma: GammaOpt = 1.0,
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    retain_ratio: RetainRatioOpt = None,
    target_modules: Annotated[
        Optional[str],
        typer.Option(
            "--target-modules", help="Comma list of module names for LoRA (default: every body Linear/Conv2d)."
        ),
    ] = None,
    taps: Annotated[
        str, typer.Option("--taps", help="Feature taps: all, last, head, or indices like 0,-1,head.")
    ] = "all",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    cache_mb: CacheMbOpt = 2048,
    workers: WorkersOpt = 0,
    set_: SetOpt = None,
    require: RequireOpt = None,
    config_file: ConfigOpt = None,
) -> None:
    """Unlearn samples or classes from a checkpoint; write an adapter and/or merged weights + report.json.

    Settings not given as flags come from rfau.toml (`rfau config` shows them); each --require
    gate (and `[audit] require` of the file) is checked on the report's metrics.after once the
    output is written: a gate that fails exits 1 and keeps the output.

    Examples:

      rfau unlearn --model ckpt/ --data train/ --forget ids.txt --test-data test/ --out unlearned/

      rfau unlearn --model ckpt/ --data train/ --forget classes.txt --by class --save merged --out forgot3/

      echo 3 | rfau unlearn -m ckpt/model.safetensors -d train.parquet -f - --by class -o out/ --json

      rfau unlearn -m ckpt/ -d train/ -f ids.txt --test-data test/ --method scrub --set kd_t=2 --set msteps=1 -o scrubbed/

      rfau unlearn --model m.safetensors --forget ids.txt --require 'forget.acc<=0.02'   # the rest from rfau.toml
    """  # noqa: E501 (copy-pasteable commands)
    from rfau_cli.gates import parse_gate
    from rfau_cli.settings import DataSettings, MethodSettings, RuntimeSettings, UnlearnConfig, parse_sets

    gates = [parse_gate(expr) for expr in require or ()]  # a malformed gate: exit 2 before any work
    cfg = UnlearnConfig(
        model=model,
        out=_default_out(ctx, model, forget) if out is None else out,
        data=DataSettings(data, forget, by, split, test_data, id_column, input_column, label_column),
        method=method,
        save=save,
        hparams=MethodSettings(
            epochs=epochs,
            lr=lr,
            rank=rank,
            alpha=alpha,
            gamma=gamma,
            batch_size=batch_size,
            retain_ratio=retain_ratio,
            target_modules=_split_list(target_modules),
            taps=taps,
            seed=seed,
            sets=parse_sets(set_),
        ),
        runtime=RuntimeSettings(device, precision, quiet, json_out, cache_mb, workers),
    )
    with user_errors(), _parent_made(cfg.out, out is None):
        from rfau_cli.commands.unlearn import run_unlearn

        report = run_unlearn(cfg, gates=gates)
    _print_result(report, json_out, quiet, cfg.out)
    with user_errors():
        _check_report_gates(report, cfg.out, quiet)


def _default_out(ctx: typer.Context, model: Path, forget: str, suffix: str = "") -> Path:
    """--out not given: the config file's `out` template, else rfau-out/<forget sha256[:12]><suffix>/."""
    from rfau_cli.config_file import output_dir
    from rfau_cli.options import CONFIG_META

    return output_dir(ctx.meta.get(CONFIG_META), model, forget, suffix)


def _parent_made(out: Path, chosen_for_user: bool) -> contextlib.AbstractContextManager[None]:
    """A default or templated output's parents (rfau-out/) are made for the run; an --out
    flag's parent must exist already."""
    from rfau_cli.config_file import parent_made

    return parent_made(out) if chosen_for_user else contextlib.nullcontext()


def _check_report_gates(report: dict, out: Path, quiet: bool) -> None:
    """`unlearn --require`: the report's `gates` block (each gate checked on metrics.after by
    the run); GateFailed (exit 1) names the gates that failed and where the output is kept."""
    from rfau_cli.commands.audit import check_gates
    from rfau_cli.errors import GateFailed

    if not quiet:
        for g in report.get("gates", []):
            typer.echo(f"gate {g['expr']}: {'held' if g['passed'] else 'FAILED'} (actual {g['actual']:.4g})", err=True)
    try:
        check_gates(report)
    except GateFailed as err:
        raise GateFailed(f"{err} (the output in {out} is kept)") from None


@app.command()
def audit(
    model: ModelOpt,
    data: DataOpt,
    forget: ForgetOpt,
    test_data: AuditTestDataOpt,
    adapter: AdapterOpt = None,
    by: ByOpt = "sample",
    id_column: IdColumnOpt = None,
    split: SplitOpt = "train",
    input_column: InputColumnOpt = None,
    label_column: LabelColumnOpt = None,
    original: OriginalOpt = None,
    reference: ReferenceOpt = None,
    attacks: AttacksOpt = "svc,loss,logreg",
    require: RequireOpt = None,
    out: OutFileOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    cache_mb: CacheMbOpt = 2048,
    workers: WorkersOpt = 0,
    config_file: ConfigOpt = None,
    references: LiraReferencesOpt = None,
    reference_dir: ReferenceDirOpt = None,
    per_sample: PerSampleOpt = None,
    retrain_epochs: RetrainEpochsOpt = None,
    retrain_lr: RetrainLrOpt = None,
    retrain_batch_size: RetrainBatchSizeOpt = 64,
    retrain_init: RetrainInitOpt = "scratch",
) -> None:
    """Measure what a model still knows about D_f: accuracy, confidence, membership attacks, gap to a retrained model.

    Gate keys are the JSON's dotted paths without the leading 'metrics.' (docs/audit.md).
    Exit codes: 0 all gates hold, 1 a gate failed, 2 bad input or gate expression.

    Examples:

      rfau audit --model unlearned/ --data train/ --forget ids.txt --test-data test/ --original ckpt/

      rfau audit -m unlearned/ -d train/ -f classes.txt --by class --test-data test/ --json --require 'forget.acc<=0.02' --require 'mia.efficacy>=0.9'

      rfau audit -m unlearned/ -d train/ -f ids.txt --test-data test/ --reference retrained/ --out audit.json --require 'reference.gap.avg_gap_pp<=5'

      rfau audit -m unlearned/ -d train/ -f ids.txt --test-data test/ --attacks svc,loss,lira --references 8 --per-sample lira.csv --require 'mia.lira.tpr_at_1pct_fpr<=0.03'
    """  # noqa: E501 (copy-pasteable commands)
    from rfau_cli.settings import AuditConfig, DataSettings, LiraSettings, MethodSettings, RuntimeSettings

    lira_given = (
        any(v is not None for v in (references, reference_dir, retrain_epochs, retrain_lr))
        or retrain_init != "scratch"
        or retrain_batch_size != 64
    )
    with user_errors():
        lira_settings = LiraSettings(
            references=8 if references is None else references,
            reference_dir=reference_dir,
            init=None if retrain_init == "scratch" else Path(retrain_init),
            hparams=MethodSettings(epochs=retrain_epochs, lr=retrain_lr, batch_size=retrain_batch_size),
        )
    cfg = AuditConfig(
        model=model,
        data=DataSettings(data, forget, by, split, test_data, id_column, input_column, label_column),
        adapter=adapter,
        original=original,
        reference=reference,
        attacks=_split_list(attacks),
        require=tuple(require or ()),
        out=out,
        seed=seed,
        runtime=RuntimeSettings(device, precision, quiet, json_out, cache_mb, workers),
        lira=lira_settings,
        lira_given=lira_given,
        per_sample=per_sample,
    )
    with user_errors():
        from rfau_cli.commands.audit import check_gates, run_audit

        result = run_audit(cfg)
        _print_audit(result, json_out, quiet)
        check_gates(result)


def _print_audit(result: dict, json_out: bool, quiet: bool) -> None:
    """JSON on stdout with --json (the table then goes to stderr unless --quiet); else the table on stdout."""
    from rich.console import Console

    from rfau_cli.report import dumps
    from rfau_cli.summary import print_audit_summary

    if json_out:
        sys.stdout.write(dumps(result) + "\n")
        if quiet:
            return
    print_audit_summary(result, Console(stderr=json_out))


@app.command()
def methods(
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Also each method's default --epochs/--lr and its own parameters (--set)."
        ),
    ] = False,
) -> None:
    """List the unlearning methods with a one-line summary each (no torch is imported).

    Examples:

      rfau methods

      rfau methods --verbose
    """
    from rfau_cli.methods import REGISTRY, method_class

    width = max(len(n) for n in REGISTRY)
    for name, (_, summary) in REGISTRY.items():
        typer.echo(f"{name:<{width}}  {summary}")
        if not verbose:
            continue
        cls = method_class(name)
        typer.echo(f"{'':<{width}}  defaults: --epochs {cls.default_epochs} --lr {cls.default_lr:g}")
        rows = cls.Params.describe()
        if not rows:
            typer.echo(f"{'':<{width}}  --set: no parameters of its own")
        for key, kind, default, text in rows:
            typer.echo(f"{'':<{width}}  --set {key}={default!r:<8} ({kind}) {text}")


OutputDirArg = Annotated[Path, typer.Argument(help="An rfau output directory (unlearn or retrain --out).")]


@app.command()
def verify(directory: OutputDirArg, json_out: JsonOpt = False) -> None:
    """Recheck an output: every sha256 of report.json, the ledger chain, the weights' rfau.* metadata, the card.

    Exit codes: 0 everything matches, 1 a mismatch (the first is named), 2 DIR is not an rfau output.

    Examples:

      rfau verify unlearned/

      rfau verify unlearned/ --json
    """
    with user_errors():
        from rfau_cli.commands.verify import check_passed, run_verify
        from rfau_cli.report import dumps

        result = run_verify(directory)
        if json_out:
            sys.stdout.write(dumps(result) + "\n")
        else:
            for check in result["checks"]:
                status = "ok" if check["passed"] else "MISMATCH"
                typer.echo(f"{status:<8}  {check['check']:<8}  {check['problem'] or check['detail']}")
            if result["passed"]:
                typer.echo(f"OK: {directory} matches its report.json ({len(result['checks'])} checks)")
        check_passed(result)


@app.command()
def ledger(directory: OutputDirArg, json_out: JsonOpt = False) -> None:
    """Print the deletion requests an output answers, oldest first (ledger.json).

    Examples:

      rfau ledger unlearned/

      rfau ledger unlearned/ --json
    """
    with user_errors():
        from rfau_cli.commands.ledger import print_ledger, run_ledger

        entries = run_ledger(directory)
        if json_out:
            from rfau_cli.report import dumps

            sys.stdout.write(dumps({"dir": str(directory), "ledger": entries}) + "\n")
            return
        print_ledger(entries, directory)


@app.command()
def retrain(
    ctx: typer.Context,
    model: ModelOpt,
    data: DataOpt,
    forget: ForgetOpt,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out", "-o", help="Output directory; must not exist. Default: rfau-out/<forget sha256[:12]>-retrain/."
        ),
    ] = None,
    by: ByOpt = "sample",
    id_column: IdColumnOpt = None,
    split: SplitOpt = "train",
    test_data: TestDataOpt = None,
    input_column: InputColumnOpt = None,
    label_column: LabelColumnOpt = None,
    init: InitOpt = "scratch",
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Passes over D_r (default 30).")] = None,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Learning rate (AdamW; default 3e-3).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Rows per D_r batch.")] = 64,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    cache_mb: CacheMbOpt = 2048,
    workers: WorkersOpt = 0,
    config_file: ConfigOpt = None,
) -> None:
    """Train the same architecture on D_r only: the reference unlearning is judged against (docs/bench.md).

    Writes merged weights + report.json like `rfau unlearn` (the report says "command": "retrain").

    Examples:

      rfau retrain --model ckpt/ --data train/ --forget classes.txt --by class --test-data test/ --out retrained/

      rfau retrain -m ckpt/ -d train/ -f ids.txt --test-data test/ --epochs 30 --seed 1 -o retrained-s1/

      rfau retrain -m minilm-topics/ -d train/ -f ids.txt --test-data test/ --init minilm-init/ --epochs 3 --lr 5e-5 --batch-size 16 -o ref/
    """  # noqa: E501 (copy-pasteable commands)
    from rfau_cli.settings import DataSettings, MethodSettings, RetrainConfig, RuntimeSettings

    cfg = RetrainConfig(
        model=model,
        out=out if out is not None else _default_out(ctx, model, forget, "-retrain"),
        data=DataSettings(data, forget, by, split, test_data, id_column, input_column, label_column),
        init=None if init in (None, "scratch") else Path(init),
        hparams=MethodSettings(epochs=epochs, lr=lr, batch_size=batch_size, seed=seed),
        runtime=RuntimeSettings(device, precision, quiet, json_out, cache_mb, workers),
    )
    with user_errors(), _parent_made(cfg.out, out is None):
        from rfau_cli.commands.retrain import run_retrain

        report = run_retrain(cfg)
    _print_result(report, json_out, quiet, cfg.out)


@app.command()
def bench(
    model: ModelOpt,
    data: DataOpt,
    forget: ForgetOpt,
    out: OutDirOpt,
    test_data: Annotated[
        Optional[Path], typer.Option("--test-data", help="Held-out data the model never saw (required).")
    ] = None,
    by: ByOpt = "sample",
    id_column: IdColumnOpt = None,
    split: SplitOpt = "train",
    input_column: InputColumnOpt = None,
    label_column: LabelColumnOpt = None,
    methods: MethodsOpt = None,
    reference: BenchReferenceOpt = None,
    reference_seeds: ReferenceSeedsOpt = None,
    retrain_epochs: RetrainEpochsOpt = None,
    retrain_init: RetrainInitOpt = "scratch",
    retrain_lr: RetrainLrOpt = None,
    retrain_batch_size: RetrainBatchSizeOpt = 64,
    seeds: SeedsOpt = "0",
    epochs: EpochsOpt = None,
    lr: LrOpt = None,
    batch_size: BatchOpt = None,
    retain_ratio: RetainRatioOpt = None,
    gamma: GammaOpt = 1.0,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "auto",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
    cache_mb: CacheMbOpt = 2048,
    workers: WorkersOpt = 0,
    set_: SetOpt = None,
    config_file: ConfigOpt = None,
    attacks: AttacksOpt = "svc,loss,logreg",
    references: LiraReferencesOpt = None,
    reference_dir: ReferenceDirOpt = None,
    same_time_as: SameTimeOpt = None,
) -> None:
    """Compare unlearning methods against retrained references; write bench.json, bench.md and bench.png.

    --epochs/--lr/--batch-size/--retain-ratio apply to every method (default: each method's own);
    each --set KEY=VALUE applies to the chosen methods that have KEY (a KEY none of them has: exit 2).
    Several references (--reference-seeds, or --reference repeated) give the noise floor and
    each method's share of the removable gap closed (docs/bench.md). --same-time-as rfau adds
    each other method again at the epochs that take RFAU's time: the comparison at equal cost.

    Examples:

      rfau bench --model ckpt/ --data train/ --forget classes.txt --by class --test-data test/ --out bench-class/

      rfau bench -m ckpt/ -d train/ -f ids.txt --test-data test/ --methods rfau,finetune --seeds 0,1,2 -o bench-sample/

      rfau bench -m ckpt/ -d train/ -f ids.txt --test-data test/ --seeds 0,1,2 --reference-seeds 0,1,2 -o bench-floor/

      rfau bench -m ckpt/ -d train/ -f ids.txt --test-data test/ --reference retrained/ --json -o bench/ > bench.json

      rfau bench -m ckpt/ -d train/ -f ids.txt --test-data test/ --methods rfau,scrub --attacks svc,loss,lira --references 8 -o bench-lira/

      rfau bench -m ckpt/ -d train/ -f ids.txt --test-data test/ --methods rfau,finetune,l1-sparse --seeds 0,1,2 --reference-seeds 0,1,2 --same-time-as rfau -o bench-same-time/
    """  # noqa: E501 (copy-pasteable commands)
    from rfau_cli.settings import BenchConfig, DataSettings, LiraSettings, MethodSettings, RuntimeSettings, parse_sets

    with user_errors():
        lira = "lira" in _split_list(attacks)  # LiRA's references use the --retrain-* recipe too
        if reference and (
            (not lira and (retrain_epochs is not None or retrain_lr is not None or retrain_init != "scratch"))
            or reference_seeds
        ):
            from rfau_cli.errors import InputError

            raise InputError("--reference replaces the retrain: drop the --retrain-* and --reference-seeds options")
        cfg = BenchConfig(
            model=model,
            out=out,
            data=DataSettings(data, forget, by, split, test_data, id_column, input_column, label_column),
            methods=_split_list(methods),
            references=tuple(reference or ()),
            reference_seeds=_parse_seeds(reference_seeds, "--reference-seeds") if reference_seeds else (),
            retrain_init=None if retrain_init == "scratch" else Path(retrain_init),
            retrain_hparams=MethodSettings(epochs=retrain_epochs, lr=retrain_lr, batch_size=retrain_batch_size),
            seeds=_parse_seeds(seeds),
            hparams=MethodSettings(
                epochs=epochs, lr=lr, batch_size=batch_size, retain_ratio=retain_ratio, gamma=gamma,
                sets=parse_sets(set_),
            ),
            runtime=RuntimeSettings(device, precision, quiet, json_out, cache_mb, workers),
            attacks=_split_list(attacks),
            same_time_as=same_time_as.strip() if same_time_as else None,
            lira=LiraSettings(
                references=8 if references is None else references,
                reference_dir=reference_dir,
                init=None if retrain_init == "scratch" else Path(retrain_init),
                hparams=MethodSettings(epochs=retrain_epochs, lr=retrain_lr, batch_size=retrain_batch_size),
            ),
        )
        from rfau_cli.commands.bench import run_bench

        result = run_bench(cfg)
    if json_out:
        from rfau_cli.report import dumps

        sys.stdout.write(dumps(result) + "\n")
        return
    from rfau_cli.commands.bench_render import print_bench_table

    print_bench_table(result, out)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def config(
    ctx: typer.Context,
    command: Annotated[
        str, typer.Argument(help="The command whose settings to show: unlearn, audit, retrain or bench.")
    ] = "unlearn",
    json_out: JsonOpt = False,
    config_file: ConfigOpt = None,
) -> None:
    """Show the settings a command would run with, and where each comes from: a flag, the config file, or the default.

    Flags after COMMAND are that command's own (they override the file, as they would in a run).

    Examples:

      rfau config

      rfau config unlearn --forget ids.txt --epochs 5

      rfau --config ci/rfau.toml config audit --json
    """
    from rfau_cli.config_view import resolve_settings, settings_table

    with user_errors():
        view = resolve_settings(ctx, command, list(ctx.args))
    if json_out:
        from rfau_cli.report import dumps

        sys.stdout.write(dumps(view) + "\n")
        return
    typer.echo(settings_table(view))


def _parse_seeds(text: str, option: str = "--seeds") -> tuple[int, ...]:
    from rfau_cli.errors import InputError

    try:
        return tuple(int(p) for p in _split_list(text))
    except ValueError:
        raise InputError(f"{option} must be a comma list of integers, not {text!r}") from None


def _split_list(text: Optional[str]) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else ()


def _print_result(report: dict, json_out: bool, quiet: bool, out: Optional[Path] = None) -> None:
    from rfau_cli.report import dumps

    if json_out:
        sys.stdout.write(dumps(report) + "\n")
        return
    from rfau_cli.summary import print_unlearn_summary

    print_unlearn_summary(report, out)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
