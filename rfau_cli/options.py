"""Option aliases shared by several commands, defined once (help text written once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

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
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Rows per forget (and per retain) batch.")]
RetainRatioOpt = Annotated[int, typer.Option("--retain-ratio", help="Retain batches per forget batch (k).")]
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
AttacksOpt = Annotated[str, typer.Option("--attacks", help="Comma list of membership attacks: svc, loss, logreg.")]
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
    typer.Option("--retrain-epochs", help="Epochs over D_r of the reference retrain (default: retrain's 30)."),
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
