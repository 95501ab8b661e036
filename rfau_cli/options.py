"""Option aliases shared by several commands, defined once (help text written once)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ModelOpt = Annotated[
    Path, typer.Option("--model", "-m", help="Checkpoint directory (config.json + model.safetensors) or its model.safetensors.")
]
DataOpt = Annotated[Path, typer.Option("--data", "-d", help="Training data: save_to_disk dir, parquet/csv/json(l) file or image folder.")]
ForgetOpt = Annotated[str, typer.Option("--forget", "-f", help="File of ids to forget, one a line ('#' comments); '-' reads stdin.")]
TestDataOpt = Annotated[
    Optional[Path], typer.Option("--test-data", help="Held-out data the model never saw (non-members). Required for --by sample.")
]
ByOpt = Annotated[str, typer.Option("--by", help="What the forget ids name: 'sample' (row index or --id-column value) or 'class' (id or label name).")]
IdColumnOpt = Annotated[Optional[str], typer.Option("--id-column", help="Column whose values the forget ids are (default: row indices).")]
SplitOpt = Annotated[str, typer.Option("--split", help="Split of a DatasetDict to use as training data.")]
InputColumnOpt = Annotated[Optional[str], typer.Option("--input-column", help="Image or text column (default: found by name).")]
LabelColumnOpt = Annotated[Optional[str], typer.Option("--label-column", help="Label column (default: label/labels).")]
OutDirOpt = Annotated[Path, typer.Option("--out", "-o", help="Output directory; must not exist (written atomically).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed: same seed, same numbers.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")]
PrecisionOpt = Annotated[str, typer.Option("--precision", help="auto (bf16 on CUDA, fp32 on CPU), fp32 or bf16.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON result to stdout and nothing else there.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output on stderr.")]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Passes over D_f (over D_r for retain-driven methods); default: the method's.")]
LrOpt = Annotated[Optional[float], typer.Option("--lr", help="Learning rate (AdamW); default: the method's.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", help="Rows per forget (and per retain) batch.")]
RetainRatioOpt = Annotated[int, typer.Option("--retain-ratio", help="Retain batches per forget batch (k).")]
