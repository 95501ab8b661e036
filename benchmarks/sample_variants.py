"""The research harness behind RFAU's sample mode (issue 7): variants of the forget loss,
each judged against three retrains of different seeds, in memory, on digits ResNets/ViTs.

    .venv/bin/python benchmarks/sample_variants.py mem300-resnet rand10 '{"design": {"loss": "design"}, "margin-c": {"loss": "margin", "converge": 0.1}}'

Scenarios (SCEN): `memg-resnet` (1,000 shifted digits, 150 epochs: memorised), `mem300-resnet`
(300 digits, 150 epochs), `fit-resnet` (4,000 shifted digits, 30 epochs: well fitted), `vit`
(4,000 shifted digits, 60 epochs). Forget sets: `rand10`, `rand1`, `class3` (half of one
class's rows), `conc10` (10% of the rows, 60% of them from class 3: the bench's c10). Variants (`loss`): `design` (DESIGN.md's head-feature target), `margin`
(smooth-L1 on the margin against the teacher's runner-up, what RFAU now does), `margin-max`,
`kl` (KL to the teacher's distribution with z_y lowered to the target margin); options:
`converge` (stop when the mean margin excess is this share of the drop asked), `cond`
(class-conditional test quantiles of the forget rows ranked among themselves), `transport`
(`global`/`class`: a row's percentile among the training rows mapped to the test margins, what
RFAU now does with `global`), `prior` (weight of the label-shift term), `rho` (the transport's persistence: how much of a
row's member percentile a retrain keeps; 1 = every row keeps it), `one_sided` (targets
never above the row's own margin), `gamma`, `lr`, `k`, `epochs`, `rank`. RFAU today is
`{"loss": "margin", "converge": 0.1, "gamma": 0.1, "transport": "global", "prior": 1.0, "one_sided": true}`. Prints, per variant,
the avg gap to the retrains (mean ± std over seeds 0,1,2), the share of the removable gap
closed, UA/RA/TA/MIA-efficacy, loss-attack AUC, the margins before/after against their
targets, time and steps. Models are cached under /tmp/research/cache.

It is a lab bench, not the product: the product's numbers come from `rfau bench` and
benchmarks/scenarios.py. Results: README, "Sample forgetting: what was measured".
"""  # noqa: E501 (copy-pasteable commands)

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from rfau_cli import toy
from rfau_cli.audit import Scores, compute_metrics, reference_gap
from rfau_cli.commands.bench import noise_floor, share_closed
from rfau_cli.features import TapReader, TapSpec, find_head, relative_distance
from rfau_cli.lora import attach_lora, find_lora_targets
from rfau_cli.methods.margin_targets import label_shift, percentile_in, transport
from rfau_cli.methods.margin_targets import margins as np_margins

torch.set_num_threads(1)
CACHE = os.environ.get("RFAU_RESEARCH_CACHE", "/tmp/research/cache")
os.makedirs(CACHE, exist_ok=True)


def digits_arrays():
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.images / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    n_test = len(y) // 4
    return X[order[n_test:]], y[order[n_test:]], X[order[:n_test]], y[order[:n_test]]


def shifted(X, dx, dy):
    out = np.zeros_like(X)
    H, W = X.shape[1:]
    xs = slice(max(dx, 0), W + min(dx, 0))
    xd = slice(max(-dx, 0), W + min(-dx, 0))
    ys = slice(max(dy, 0), H + min(dy, 0))
    yd = slice(max(-dy, 0), H + min(-dy, 0))
    out[:, yd, xd] = X[:, ys, xs]
    return out


def grow(X, y, n, seed):
    shifts = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    Xs = np.concatenate([shifted(X, dx, dy) for dx, dy in shifts])
    ys = np.tile(y, len(shifts))
    idx = np.random.default_rng(seed).choice(len(ys), n, replace=False)
    return Xs[idx], ys[idx]


# The refit head's L2 penalty, in rows' worth of loss: C = PROBE_ROWS / n in scikit-learn's
# terms, so the probe's strength does not change with the sample size.
PROBE_ROWS = 10.0


def class_drop(
    member_features: np.ndarray,
    member_labels: np.ndarray,
    member_forgotten: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    test_margin: np.ndarray,
    num_labels: int,
    probe_rows: float = PROBE_ROWS,
) -> np.ndarray:
    """Rejected (docs/results.md, "How much a retrain loses on a class: a refit probe").

    Per class (<= 0, in the model's logits): how much a retrain's margin on the class's unseen
    rows falls, estimated by refitting a linear head on the teacher's head-input features of
    (sampled) members with and without the forgotten ones.

    Why: a retrain that lost most of a class's rows does not only see the class less often
    (label shift, log(1 - f_y)); it learns the class worse. On the bench's digits models its
    margin on the class's test rows fell 2.4-4.3 logits where label shift predicts 0.9. A
    strongly regularised linear head learns each class in proportion to its evidence, so
    refitting it without D_f shows which classes lose and how much; its test margins are
    mapped to the model's at the same percentile, so only the probe's ranks matter, not its
    scale. The mean over the class's test rows is taken (the per-row values are noisy), and
    only falls count: a class does not become surer because another one shrank.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    drop = np.zeros(num_labels)
    kept = ~member_forgotten
    if len(test_margin) == 0 or len(np.unique(member_labels[kept])) < 2 or not member_forgotten.any():
        return drop
    scaler = StandardScaler().fit(member_features)
    train_x, test_x = scaler.transform(member_features), scaler.transform(test_features)

    def probe_margins(rows: np.ndarray) -> np.ndarray:
        head = LogisticRegression(C=probe_rows / rows.sum(), max_iter=1000)
        head.fit(train_x[rows], member_labels[rows])
        logits = np.full((len(test_x), num_labels), -1e6)  # a class with no rows left never wins
        logits[:, head.classes_] = _two_class_safe(head.decision_function(test_x), len(head.classes_))
        return np_margins(logits, test_labels)[0]

    full = probe_margins(np.ones(len(member_labels), dtype=bool))
    without = probe_margins(kept)
    shift = np.quantile(test_margin, percentile_in(full, without)) - np.quantile(test_margin, percentile_in(full, full))
    for label in np.unique(test_labels):
        drop[label] = min(0.0, float(shift[test_labels == label].mean()))
    return drop


def _two_class_safe(scores: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn returns one column for two classes (the second's log-odds)."""
    if n_classes == 2 and scores.ndim == 1:
        return np.stack([-scores / 2, scores / 2], axis=1)
    return scores


def transport_persistent(
    forget_margin: np.ndarray,
    member_margin: np.ndarray,
    test_margin: np.ndarray,
    persistence: float = 1.0,
) -> np.ndarray:
    """Rejected (docs/results.md, "How much of its standing a row keeps"): margin_targets.transport
    with a row's standing only partly kept.

    `persistence` is how much of a row's standing a retrain keeps: the correlation, in normal
    scores, between the percentile a row holds among the original's members and the one it
    holds among a retrain's test rows once it is not trained on. At 1 every row keeps its
    percentile (the test margin at the same percentile); at 0 a request's rows are spread
    over the whole test distribution, whatever they were. In between, each row's non-member
    score is modelled as persistence * s + sqrt(1 - persistence^2) * noise (s: its member
    score), the request's targets are the quantiles of the pooled distribution this predicts,
    and the rows keep their order.
    """
    p = percentile_in(member_margin, forget_margin)
    if persistence >= 1.0 or len(forget_margin) == 0:
        return np.quantile(test_margin, p)
    from scipy.special import ndtr, ndtri

    edge = 0.5 / max(len(member_margin), 1)
    score = ndtri(np.clip(p, edge, 1.0 - edge))
    spread = np.sqrt(1.0 - persistence**2)
    grid = np.linspace(-8.0, 8.0, 4001)
    pooled = np.zeros_like(grid)
    for start in range(0, len(score), 1024):  # bounded memory for big requests
        centre = persistence * score[start : start + 1024, None]
        pooled += ndtr((grid[None, :] - centre) / spread).sum(0)
    pooled /= len(score)
    levels = (np.arange(len(score)) + 0.5) / len(score)
    order = np.lexsort((forget_margin, score))  # by score, ties by the row's own margin
    quantiles = np.empty(len(score))
    quantiles[order] = ndtr(np.interp(levels, pooled, grid))
    return np.quantile(test_margin, quantiles)


SCEN = {
    # name: arch, n_train, grown, epochs
    "mem-resnet": ("resnet", 1000, False, 150),
    "fit-resnet": ("resnet", 4000, True, 30),
    "vit": ("vit", 4000, True, 60),
    "mem-vit": ("vit", 1000, False, 150),
    "mem300-resnet": ("resnet", 300, False, 150),
    "memg-resnet": ("resnet", 1000, True, 150),
    "memg-vit": ("vit", 1000, True, 150),
}


def scenario_data(name):
    arch, n, grown, epochs = SCEN[name]
    Xtr, ytr, Xte, yte = digits_arrays()
    if grown:
        Xtr, ytr = grow(Xtr, ytr, n, 1)
        Xte, yte = grow(Xte, yte, 1000, 2)
    else:
        idx = np.random.default_rng(1).choice(len(ytr), n, replace=False)
        Xtr, ytr = Xtr[idx], ytr[idx]
    return torch.tensor(Xtr)[:, None], torch.tensor(ytr), torch.tensor(Xte)[:, None], torch.tensor(yte)


def forget_rows(name, kind, y):
    n = len(y)
    rng = np.random.default_rng(7)
    if kind == "rand10":
        return np.sort(rng.choice(n, n // 10, replace=False))
    if kind == "rand1":
        return np.sort(rng.choice(n, max(n // 100, 5), replace=False))
    if kind == "class3":  # half the rows of one class: one user's data is often one kind
        rows = np.flatnonzero(y.numpy() == 3)
        return np.sort(rng.choice(rows, len(rows) // 2, replace=False))
    if kind == "conc10":  # 10% of the rows, 60% of them from class 3 (the bench's c10)
        labels = y.numpy()
        size = n // 10
        in3, others = np.flatnonzero(labels == 3), np.flatnonzero(labels != 3)
        k = min(len(in3) - 1, round(size * 0.6))
        return np.sort(np.concatenate([rng.choice(in3, k, replace=False), rng.choice(others, size - k, replace=False)]))
    raise ValueError(kind)


def train(name, rows, seed):
    arch, n, grown, epochs = SCEN[name]
    key = f"{CACHE}/{name}-{hash(tuple(rows.tolist())) & 0xFFFFFFFF:x}-s{seed}.pt"
    cfg = toy.tiny_image_config(arch)
    model = toy.fresh_model(cfg)
    if os.path.exists(key):
        model.load_state_dict(torch.load(key))
        return model.eval()
    X, y, _, _ = DATA[name]
    torch.manual_seed(seed)
    model = toy.fresh_model(cfg)
    # drop_small_last: a 4-row last batch corrupts batch-norm statistics (docs/results.md)
    inputs = {"pixel_values": X[rows]}
    model = toy.fit_classifier(model, inputs, y[rows], epochs, lr=3e-3, seed=seed, drop_small_last=True)
    torch.save(model.state_dict(), key)
    return model.eval()


DATA = {}


@torch.no_grad()
def scores(model, X, y):
    lp = torch.log_softmax(model(pixel_values=X).logits.double(), -1).numpy()
    return Scores(lp, y.numpy(), np.zeros((len(y), 1), np.float32))


def audit(model, name, f_rows):
    X, y, Xt, yt = DATA[name]
    keep = np.setdiff1d(np.arange(len(y)), f_rows)
    s = {
        "forget": scores(model, X[f_rows], y[f_rows]),
        "retain": scores(model, X[keep], y[keep]),
        "test": scores(model, Xt, yt),
    }
    return compute_metrics(s, (), 0, ("svc", "loss"))


def summary(m):
    return {
        "UA": 100 * m["forget"]["ua"],
        "RA": 100 * m["retain"]["acc"],
        "TA": 100 * m["test"]["acc"],
        "MIA": 100 * m["mia"]["efficacy"],
        "AUC": m["mia"]["loss_auc"],
    }


REF_SEEDS = (1, 2, 3)


def references(name, f_rows):
    X, y, _, _ = DATA[name]
    keep = np.setdiff1d(np.arange(len(y)), f_rows)
    return [audit(train(name, keep, s), name, f_rows) for s in REF_SEEDS]


def gap_to_refs(m, refs):
    return float(np.mean([reference_gap(m, r)["avg_gap_pp"] for r in refs]))


def floor(refs):
    return noise_floor(refs, [str(s) for s in REF_SEEDS])["mean"]


def margins(z, y):
    zy = z.gather(1, y[:, None])[:, 0]
    other = z.scatter(1, y[:, None], float("-inf"))
    top, c = other.max(1)
    return zy - top, c


def quantile_match(f_vals, t_vals):
    ranks = (np.argsort(np.argsort(f_vals)) + 0.5) / len(f_vals)
    return np.quantile(t_vals, ranks)


def run(original, name, f_rows, v, seed=0):
    X, y, Xt, yt = DATA[name]
    keep = np.setdiff1d(np.arange(len(y)), f_rows)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = copy.deepcopy(original)
    pm = attach_lora(model, find_lora_targets(model), v.get("rank", 8), v.get("alpha", 16), seed)
    head = find_head(pm)
    spec = TapSpec(None, True)
    reader = TapReader(pm, head, spec)

    def teacher(xb):
        with torch.no_grad(), pm.disable_adapter():
            return reader({"pixel_values": xb})

    tz_f, tt_f = teacher(X[f_rows])
    tz_r, tt_r = teacher(X[keep])
    tz_t, _ = teacher(Xt)
    yf = y[f_rows]
    m_f, c_f = margins(tz_f, yf)
    m_t, _ = margins(tz_t, yt)
    # target margins
    tgt_src = m_t.numpy() * v.get("test_scale", 1.0)
    rank_by = m_f.numpy() if v.get("rank_by", "margin") == "margin" else rng.random(len(f_rows))
    if v.get("cond"):
        qq = np.zeros(len(f_rows))
        for c in np.unique(yf.numpy()):
            sel = yf.numpy() == c
            src = tgt_src[yt.numpy() == c]
            qq[sel] = quantile_match(rank_by[sel], src if len(src) >= 5 else tgt_src)
        q = torch.tensor(qq, dtype=torch.float32)
    else:
        q = torch.tensor(quantile_match(rank_by, tgt_src), dtype=torch.float32)
    if v.get("transport"):
        # Member -> non-member transport (rfau_cli/methods/margin_targets.py); "class": within
        # each class (rejected, docs/results.md), "global": pooled (what RFAU does).
        tz_all, _ = teacher(X)
        m_all, _ = margins(tz_all, y)
        m_all, yn, ytn, mf_np, yf_np = m_all.numpy(), y.numpy(), yt.numpy(), m_f.numpy(), yf.numpy()
        qq = transport_persistent(mf_np, m_all, tgt_src, v.get("rho", 1.0))
        if v["transport"] == "class":
            for c in np.unique(yf_np):
                if (ytn == c).sum() >= v.get("min_test", 10):
                    sel = yf_np == c
                    qq[sel] = transport(mf_np[sel], m_all[yn == c], tgt_src[ytn == c])
        q = torch.tensor(qq, dtype=torch.float32)
    if v.get("prior"):
        shift_q = label_shift(y.numpy(), yf.numpy(), c_f.numpy(), tz_f.shape[1])
        q = q + v["prior"] * torch.tensor(shift_q, dtype=torch.float32)
    if v.get("drop"):
        # The class-level fall a retrain shows on a class it lost rows of (margin_targets.class_drop):
        # "probe" alone, or "min" with label shift (the larger of the two falls).
        _, tt_all = teacher(X)
        _, tt_t = teacher(Xt)
        gone = np.zeros(len(y), dtype=bool)
        gone[f_rows] = True
        per_class = class_drop(
            tt_all[-1].numpy(), y.numpy(), gone, tt_t[-1].numpy(), yt.numpy(), m_t.numpy(), tz_f.shape[1]
        )
        dq = per_class[yf.numpy()]
        if v["drop"] == "min":
            dq = np.minimum(dq, label_shift(y.numpy(), yf.numpy(), c_f.numpy(), tz_f.shape[1]))
        q = q + torch.tensor(dq, dtype=torch.float32)
    if v.get("one_sided"):
        # Never ask a forgotten row to become more confident than the original was.
        q = torch.minimum(q, m_f)
    kind = v["loss"]
    W = head.weight.detach().float()
    if kind == "kl":
        # target logits: teacher's with z_y moved so the margin equals q (others unchanged)
        z_t = tz_f.clone()
        z_t[torch.arange(len(yf)), yf] = tz_f[torch.arange(len(yf)), yf] - (m_f - q)
        p_t = torch.softmax(z_t / v.get("T", 1.0), -1)
    shift = torch.clamp(m_f - q, min=0) if v.get("clamp", True) else (m_f - q)
    opt = torch.optim.AdamW([p for p in pm.parameters() if p.requires_grad], lr=v.get("lr", 1e-3), weight_decay=0.0)
    bs, k = 32, v.get("k", 4)
    nf = len(f_rows)
    per_epoch = max(1, math.ceil(nf / bs))
    steps = max(v.get("epochs", 20) * per_epoch, v.get("min_steps", 50))
    pm.eval()
    r_order = rng.permutation(len(keep))
    r_pos = 0
    step = 0
    gamma = v.get("gamma", 1.0)
    conv = v.get("converge")
    if conv:
        steps = v.get("max_epochs", 100) * per_epoch
    need0 = float(torch.clamp(m_f - q, min=0).mean())
    stop = None
    while step < steps and stop is None:
        order = rng.permutation(nf)
        for i in range(per_epoch):
            fi = order[i * bs : (i + 1) * bs]
            ri = []
            need = bs * k
            while need > 0:
                if r_pos >= len(r_order):
                    r_order, r_pos = rng.permutation(len(keep)), 0
                chunk = r_order[r_pos : r_pos + need]
                r_pos += len(chunk)
                need -= len(chunk)
                ri.append(chunk)
            ri = np.concatenate(ri) if k else np.zeros(0, int)
            xb = torch.cat([X[f_rows[fi]], X[keep[ri]]])
            z, taps = reader({"pixel_values": xb})
            n = len(fi)
            if k:
                l_r = relative_distance([t[n:] for t in taps], [t[ri] for t in tt_r], [t[ri] for t in tt_r])
            else:
                l_r = torch.zeros(())
            zf = z[:n]
            yb = yf[fi]
            if kind == "design":
                c = c_f[fi]
                d = W[yb] - W[c]
                d = d / d.pow(2).sum(1, keepdim=True)
                tgt = tt_f[-1][fi] - shift[fi, None] * d
                l_f = relative_distance([taps[-1][:n]], [tgt], [tt_f[-1][fi]])
            elif kind == "margin":
                ms = zf.gather(1, yb[:, None])[:, 0] - zf.gather(1, c_f[fi][:, None])[:, 0]
                l_f = F.smooth_l1_loss(ms, q[fi], beta=v.get("beta", 1.0))
            elif kind == "margin-max":
                ms, _ = margins(zf, yb)
                l_f = F.smooth_l1_loss(ms, q[fi], beta=v.get("beta", 1.0))
            elif kind == "kl":
                T = v.get("T", 1.0)
                l_f = F.kl_div(torch.log_softmax(zf / T, -1), p_t[fi], reduction="batchmean")
            elif kind == "kl+feat":
                T = 1.0
                l_f = F.kl_div(torch.log_softmax(zf, -1), p_t[fi], reduction="batchmean")
            loss = l_r * v.get("retain_w", 1.0) + gamma * l_f
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= steps:
                break
        if conv and step >= v.get("min_steps_c", 0):
            with torch.no_grad():
                zz = pm(pixel_values=X[f_rows]).logits
                if kind == "margin":
                    mm = zz.gather(1, yf[:, None])[:, 0] - zz.gather(1, c_f[:, None])[:, 0]
                else:
                    mm, _ = margins(zz, yf)
            left = float(torch.clamp(mm - q, min=0).mean())
            if left <= conv * need0:
                stop = step
    reader.close()
    with torch.no_grad():
        zf, _ = reader({"pixel_values": X[f_rows]}) if False else (pm(pixel_values=X[f_rows]).logits, None)
        mf_after, _ = margins(zf, yf)
    merged = pm.merge_and_unload()
    info = {
        "steps": step,
        "m_f_before": float(m_f.mean()),
        "q_mean": float(q.mean()),
        "m_f_after": float(mf_after.mean()),
        "m_t": float(m_t.mean()),
        "q_neg": float((q < 0).float().mean()),
        "after_neg": float((mf_after < 0).float().mean()),
        "q_p10": float(np.quantile(q.numpy(), 0.1)),
        "after_p10": float(np.quantile(mf_after.numpy(), 0.1)),
        "q_p25": float(np.quantile(q.numpy(), 0.25)),
        "after_p25": float(np.quantile(mf_after.numpy(), 0.25)),
    }
    return merged.eval(), info


def evaluate(name, kind, variants, seeds=(0, 1, 2)):
    X, y, Xt, yt = DATA.setdefault(name, scenario_data(name))
    f_rows = forget_rows(name, kind, y)
    original = train(name, np.arange(len(y)), 0)
    refs = references(name, f_rows)
    fl = floor(refs)
    m0 = audit(original, name, f_rows)
    g0 = gap_to_refs(m0, refs)
    ref_sum = {k: float(np.mean([summary(r)[k] for r in refs])) for k in summary(m0)}
    print(f"== {name}/{kind}: |D|={len(y)} |Df|={len(f_rows)} none={g0:.2f} floor={fl:.2f} removable={g0 - fl:.2f}")
    print(f"   original {fmt(summary(m0))}")
    print(f"   retrain  {fmt(ref_sum)}")
    out = {}
    for vname, v in variants.items():
        gaps, sums, infos, times = [], [], [], []
        for s in seeds:
            t0 = time.perf_counter()
            model, info = run(original, name, f_rows, v, seed=s)
            times.append(time.perf_counter() - t0)
            m = audit(model, name, f_rows)
            gaps.append(gap_to_refs(m, refs))
            sums.append(summary(m))
            infos.append(info)
        share = [share_closed(g0, g, fl) for g in gaps]
        avg = {k: float(np.mean([d[k] for d in sums])) for k in sums[0]}
        inf = {k: float(np.mean([d[k] for d in infos])) for k in infos[0]}
        print(
            f"   {vname:18s} gap {np.mean(gaps):.2f}±{np.std(gaps):.2f} share "
            f"{100 * np.mean(share):.0f}±{100 * np.std(share):.0f}% "
            f"{fmt(avg)} mf {inf['m_f_before']:.2f}->{inf['m_f_after']:.2f} (q {inf['q_mean']:.2f}) "
            f"{np.mean(times):.1f}s steps {inf['steps']:.0f}",
            flush=True,
        )
        print(
            f"      q<0 {inf['q_neg']:.3f} after<0 {inf['after_neg']:.3f} p10 "
            f"{inf['q_p10']:.2f}/{inf['after_p10']:.2f} p25 {inf['q_p25']:.2f}/{inf['after_p25']:.2f}"
        )
        out[vname] = {"gap": gaps, "share": share, "summary": avg, "info": inf}
    return {"none": g0, "floor": fl, "variants": out}


def fmt(d):
    return " ".join(f"{k} {v:.3f}" if k == "AUC" else f"{k} {v:.1f}" for k, v in d.items())


if __name__ == "__main__":
    spec = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {"design": {"loss": "design"}}
    evaluate(sys.argv[1], sys.argv[2], spec)
