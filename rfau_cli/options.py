"""Option aliases shared by several commands, defined once (help text written once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer

ModelOpt = Annotated[
    Path,
    typer.Option(
        "--model", "-m", help="Checkpoint directory (config.json + model.safetensors) or its model.safetensors."
    ),
]
DataOpt = Annotated[
    Path,
    typer.Option("--data", "-d", help="Training data: save_to_disk dir, parquet/csv/json(l) file or image folder."),
]
ForgetOpt = Annotated[
    str, typer.Option("--forget", "-f", help="File of ids to forget, one a line ('#' comments); '-' reads stdin.")
]
TestDataOpt = Annotated[
    Optional[Path],
    typer.Option("--test-data", help="Held-out data the model never saw (non-members). Required for --by sample."),
]
ByOpt = Annotated[
    Literal["sample", "class"],
    typer.Option(
        "--by",
        help="What the forget ids name: 'sample' (row index or --id-column value) or 'class' (id or label name).",
    ),
]
IdColumnOpt = Annotated[
    Optional[str], typer.Option("--id-column", help="Column whose values the forget ids are (default: row indices).")
]
SplitOpt = Annotated[str, typer.Option("--split", help="Split of a DatasetDict to use as training data.")]
InputColumnOpt = Annotated[
    Optional[str], typer.Option("--input-column", help="Image or text column (default: found by name).")
]
LabelColumnOpt = Annotated[Optional[str], typer.Option("--label-column", help="Label column (default: label/labels).")]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory; must not exist (written atomically).")]
DefaultOutDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--out",
        "-o",
        help="Output directory; must not exist (written atomically). Default: `out` of rfau.toml, "
        "else rfau-out/<first 12 hex of the forget list's sha256>/.",
    ),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed: same seed, same numbers.")]
DeviceOpt = Annotated[
    Literal["auto", "cpu", "cuda"], typer.Option("--device", help="auto (CUDA when present), cpu or cuda.")
]
PrecisionOpt = Annotated[
    Literal["auto", "fp32", "bf16"], typer.Option("--precision", help="auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON result to stdout and nothing else there.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output on stderr.")]
EpochsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--epochs",
        help="Most passes over D_f (over D_r for retain-driven methods); a method may stop earlier once converged. "
        "A value given here is never raised; the method's default (RFAU: 20 for classes, 100 for samples; both "
        "stop early "
        "once their targets are met) is raised to reach its minimum steps (RFAU: 50).",
    ),
]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Learning rate (AdamW); default: the method's.")]
BatchOpt = Annotated[
    Optional[int],
    typer.Option(
        "--batch-size",
        help="Rows per forget (and per retain) batch (default 32; RFAU's sample mode takes larger batches for a "
        "request of over 213 rows, up to 64: report `training.batch_size`).",
    ),
]
RetainRatioOpt = Annotated[
    Optional[int],
    typer.Option("--retain-ratio", help="Retain batches per forget batch (k; default 4, RFAU's sample mode 2)."),
]
GammaOpt = Annotated[float, typer.Option("--gamma", help="Weight of the forget loss (methods that have one: RFAU).")]
SaveOpt = Annotated[
    Literal["adapter", "merged", "both"],
    typer.Option("--save", help="adapter, merged or both (full-weight methods: merged weights only)."),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Set one of the method's own parameters (`rfau methods --verbose` lists them); repeatable.",
    ),
]
AdapterOpt = Annotated[
    Optional[Path],
    typer.Option("--adapter", help="PEFT adapter directory to apply to --model (an adapter-only `unlearn` output)."),
]
AuditTestDataOpt = Annotated[
    Path,
    typer.Option(
        "--test-data", help="Held-out data the model never saw: the attacks' non-members and the test accuracy."
    ),
]
OriginalOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--original", help="The checkpoint before unlearning: feature distance and prediction agreement to it."
    ),
]
ReferenceOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--reference", help="A model retrained without D_f: its metrics, the gap to it per metric and the Avg. Gap."
    ),
]
AttacksOpt = Annotated[
    str,
    typer.Option(
        "--attacks",
        help="Comma list of membership attacks: svc, loss, logreg, lira (LiRA trains --references models).",
    ),
]
LiraReferencesOpt = Annotated[
    Optional[int],
    typer.Option(
        "--references",
        help="LiRA: reference models to train (default 8; 4+ for online LiRA, 2-3 run its offline variant).",
    ),
]
ReferenceDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--reference-dir",
        help="LiRA: cache of reference models, reused across audits (default $RFAU_CACHE/references or "
        "~/.cache/rfau/references).",
    ),
]
PerSampleOpt = Annotated[
    Optional[Path],
    typer.Option("--per-sample", help="LiRA: write split, row, score, flagged per candidate row (.csv or .jsonl)."),
]
RetrainInitOpt = Annotated[
    str,
    typer.Option("--retrain-init", help="Starting weights of the retrain recipe: 'scratch' or a checkpoint."),
]
RetrainLrOpt = Annotated[
    Optional[float], typer.Option("--retrain-lr", help="Learning rate of the retrain recipe (default 3e-3).")
]
RetrainBatchSizeOpt = Annotated[int, typer.Option("--retrain-batch-size", help="Batch size of the retrain recipe.")]
RequireOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--require",
        help="Gate 'KEY OP NUMBER' (OP: <=, <, >=, >, ==), e.g. 'forget.acc<=0.02'; repeatable; any failure exits 1.",
    ),
]
OutFileOpt = Annotated[
    Optional[Path], typer.Option("--out", "-o", help="Also write the JSON result to this file (must not exist).")
]
InitOpt = Annotated[
    Optional[str],
    typer.Option(
        "--init",
        help="Starting weights: 'scratch' (fresh from the config, seeded) or a checkpoint of the same architecture.",
    ),
]
MethodsOpt = Annotated[
    Optional[str], typer.Option("--methods", help="Comma list of methods to compare (default: every registered one).")
]
SameTimeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--same-time-as",
        metavar="METHOD",
        help="Also rerun every other method with the epochs that take about METHOD's time (rows "
        "'NAME@METHOD-time'): quality at equal cost, beside each method's defaults.",
    ),
]
BenchReferenceOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--reference",
        help=("A model retrained without D_f to compare against; repeat it for several (retrains of different "
            "seeds give the noise floor). Default: retrain one per --reference-seeds."),
    ),
]
ReferenceSeedsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--reference-seeds",
        help=("Comma list of seeds: retrain the reference once per seed (two or more give the noise floor). "
            "Default: --seeds."),
    ),
]
RetrainEpochsOpt = Annotated[
    Optional[int],
    typer.Option("--retrain-epochs", help="Epochs of the retrain recipe (reference, LiRA; default: retrain's 30)."),
]
SeedsOpt = Annotated[str, typer.Option("--seeds", help="Comma list of seeds; several give mean and spread.")]
CacheMbOpt = Annotated[
    int,
    typer.Option(
        "--cache-mb",
        help=("Memory (MiB) for encoded inputs, each row encoded once a run; rows beyond it are encoded on the "
            "fly. 0: no cache."),
    ),
]
WorkersOpt = Annotated[
    int,
    typer.Option(
        "--workers",
        help="DataLoader processes encoding rows beyond --cache-mb ahead of the model (0: in the main process).",
    ),
]

# The loaded config file (or None: there is none) of this invocation, in click's ctx.meta,
# shared by every context of one command line.
CONFIG_META = "rfau.config"


def use_config_file(ctx: typer.Context, _param: Any, value: Optional[Path]) -> Optional[Path]:
    """Load the config file (this `--config`, the root `rfau --config`, ./rfau.toml or
    ./pyproject.toml) and make its values the defaults of this command's options.

    Eager, so it runs before the other options are read; a bad file is exit 2 here, before
    any work. A context below one that loaded a file (`rfau config unlearn`) reuses it.
    """
    from rfau_cli.config_file import find_config

    if value is not None or CONFIG_META not in ctx.meta:
        ctx.meta[CONFIG_META] = find_config(value or ctx.find_root().params.get("config"))
    config = ctx.meta[CONFIG_META]
    if config is not None:
        params = {p.name for p in ctx.command.params if p.name}
        ctx.default_map = {**(ctx.default_map or {}), **config.defaults_for(ctx.info_name or "", params)}
    return value


def missing_option_message(ctx: Any, param: Any) -> Optional[str]:
    """For a required option that neither the command line nor the config file gave: a line
    naming both the flag and the file key, when the file could have given it."""
    from rfau_cli.config_file import file_feeds, missing_message

    name = getattr(param, "name", None)
    if ctx is None or not name or not getattr(param, "opts", None) or not file_feeds(ctx.info_name or "", name):
        return None
    return missing_message(max(param.opts, key=len), name, ctx.meta.get(CONFIG_META))


ConfigOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        is_eager=True,
        expose_value=False,
        callback=use_config_file,
        help="Config file (default: ./rfau.toml, else the tool.rfau table of ./pyproject.toml); flags override it.",
    ),
]
