"""How much a retrain loses on the class a request takes most of, against two estimates made
from the original model alone: label shift (what RFAU uses) and a refit linear probe
(`sample_variants.class_drop`, rejected). Nothing is unlearned; docs/results.md, "How much a
retrain loses on a class: a refit probe", has the table this prints.

    # the bench's models and retrains (benchmarks/scenarios.py --out OUT --cache CACHE)
    .venv/bin/python benchmarks/class_fall.py bench CACHE OUT/resnet-fit-c10/runs resnet-fit digits-x3 c10
    # the harness's (sample_variants.py; retrains are trained and cached on first use)
    .venv/bin/python benchmarks/class_fall.py harness fit-resnet conc10
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import sample_variants as sv  # noqa: E402

from rfau_cli.features import TapReader, TapSpec, find_head  # noqa: E402
from rfau_cli.methods.margin_targets import label_shift  # noqa: E402
from rfau_cli.methods.margin_targets import margins as np_margins  # noqa: E402

PROBE_STRENGTHS = (10.0, 40.0, 160.0)  # the probe's L2 penalty, in rows' worth of loss


def head_inputs(model, X):
    reader = TapReader(model, find_head(model), TapSpec((), True))
    with torch.no_grad():
        logits, taps = reader({"pixel_values": X})
    reader.close()
    return logits.double().numpy(), taps[-1].double().numpy()


def bench_inputs(cache: Path, runs: Path, model: str, data: str, forget: str):
    import datasets

    from rfau_cli.checkpoint import load_model, resolve_checkpoint
    from rfau_cli.encoding import _to_chw_unit

    def table(split):
        d = datasets.load_from_disk(str(cache / "data" / data / split))
        X = np.stack([_to_chw_unit(im, 1) for im in d["image"]])
        return torch.as_tensor(X, dtype=torch.float32), np.array(d["label"])

    X, y = table("train")
    Xt, yt = table("test")
    lines = (cache / "forget" / f"{data}-{forget}.txt").read_text().splitlines()
    f = np.array([int(line) for line in lines if line.strip() and not line.startswith("#")])
    original = load_model(resolve_checkpoint(cache / "models" / model)).eval()
    refs = [load_model(resolve_checkpoint(runs / f"retrain-s{s}")).eval() for s in (0, 1, 2)]
    return X, y, Xt, yt, f, original, refs


def harness_inputs(name: str, kind: str):
    X, y, Xt, yt = sv.DATA.setdefault(name, sv.scenario_data(name))
    f = sv.forget_rows(name, kind, y)
    keep = np.setdiff1d(np.arange(len(y)), f)
    original = sv.train(name, np.arange(len(y)), 0)
    return X, y.numpy(), Xt, yt.numpy(), f, original, [sv.train(name, keep, s) for s in sv.REF_SEEDS]


def main() -> None:
    torch.set_num_threads(1)
    if sys.argv[1] == "bench":
        X, y, Xt, yt, f, original, refs = bench_inputs(Path(sys.argv[2]), Path(sys.argv[3]), *sys.argv[4:7])
    else:
        X, y, Xt, yt, f, original, refs = harness_inputs(sys.argv[2], sys.argv[3])
    z_tr, h_tr = head_inputs(original, X)
    z_t, h_t = head_inputs(original, Xt)
    m_t = np_margins(z_t, yt)[0]
    main_class = int(np.bincount(y[f]).argmax())
    rows = yt == main_class
    falls = [np_margins(head_inputs(r, Xt)[0], yt)[0][rows].mean() - m_t[rows].mean() for r in refs]
    runner_up = np_margins(z_tr[f], y[f])[1]
    shift = label_shift(y, y[f], runner_up, z_tr.shape[1])[y[f] == main_class].mean()
    gone = np.zeros(len(y), dtype=bool)
    gone[f] = True
    print(f"class {main_class}: {int((y[f] == main_class).sum())} of its {int((y == main_class).sum())} rows forgotten")
    print(
        f"retrains' fall on its test rows: {np.mean(falls):+.2f} (per retrain {', '.join(f'{x:+.2f}' for x in falls)})"
    )
    print(f"label shift: {shift:+.2f}")
    for strength in PROBE_STRENGTHS:
        drop = sv.class_drop(h_tr, y, gone, h_t, yt, m_t, z_tr.shape[1], probe_rows=strength)
        print(f"probe, {strength:g} rows: {drop[main_class]:+.2f}")


if __name__ == "__main__":
    main()
