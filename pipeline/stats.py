"""``callqa stats``: flag rates, talk-ratio and noise distributions by cohort, with confidence intervals.

Reads an output folder / ``callqa.db`` or the Parquet export. Only ``ok`` calls count.

* Flag rate of a type = share of calls with at least one such flag; 95 % Wilson interval.
* Distributions (agent talk ratio, the main ``noise_*`` measurements — SNR, noise floor,
  BAK MOS, background speech — and any ``--metric`` column): mean with a t interval,
  median, 10th/90th percentiles.
* Two cohorts (``--by`` with two values, or ``--compare A,B``): differences A − B with
  95 % intervals (Newcombe's method for rates, Welch for means) and p-values
  (Fisher's exact test for rates, Welch's t and Mann–Whitney U for distributions).
  Many metrics are compared at once: read p-values with that in mind (Holm-adjusted
  values are given too).
* Precision per flag type from supervisors' verdicts (``reviews``): confirmed ÷ reviewed,
  Wilson interval — how often a raised flag is right.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

Z95 = 1.959963984540054
MAX_NOISE_COLUMNS = 8


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None, float | None]:
    """Proportion k/n with its Wilson score interval (sound at small n and near 0 or 1)."""
    if n <= 0:
        return None, None, None
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return p, max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float | None, float | None, float | None]:
    """Difference of two proportions p1 - p2 with Newcombe's hybrid score interval."""
    p1, l1, u1 = wilson(k1, n1)
    p2, l2, u2 = wilson(k2, n2)
    if p1 is None or p2 is None:
        return None, None, None
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def mean_ci(values) -> dict:
    import numpy as np
    from scipy import stats as st

    x = np.asarray([v for v in values if v is not None and v == v], dtype=float)
    n = len(x)
    if n == 0:
        return {"n": 0, "mean": None, "ci_low": None, "ci_high": None, "median": None, "p10": None, "p90": None}
    mean = float(x.mean())
    if n > 1:
        half = float(st.t.ppf(0.975, n - 1) * x.std(ddof=1) / math.sqrt(n))
    else:
        half = float("nan")
    return {"n": n, "mean": mean, "ci_low": mean - half if n > 1 else None, "ci_high": mean + half if n > 1 else None,
            "median": float(np.median(x)), "p10": float(np.percentile(x, 10)), "p90": float(np.percentile(x, 90))}


def welch(a, b) -> dict:
    import numpy as np
    from scipy import stats as st

    a = np.asarray([v for v in a if v is not None and v == v], dtype=float)
    b = np.asarray([v for v in b if v is not None and v == v], dtype=float)
    if len(a) < 2 or len(b) < 2:
        return {"diff": None, "ci_low": None, "ci_high": None, "p_welch": None, "p_mannwhitney": None}
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    diff = float(a.mean() - b.mean())
    if se == 0:
        return {"diff": diff, "ci_low": diff, "ci_high": diff, "p_welch": None, "p_mannwhitney": None}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(st.t.ppf(0.975, df) * se)
    p_t = float(st.ttest_ind(a, b, equal_var=False).pvalue)
    try:
        p_u = float(st.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    except ValueError:
        p_u = None
    return {"diff": diff, "ci_low": diff - half, "ci_high": diff + half, "p_welch": p_t, "p_mannwhitney": p_u}


def holm(pvalues: list[float | None]) -> list[float | None]:
    idx = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    out: list[float | None] = [None] * len(pvalues)
    m = len(idx)
    running = 0.0
    for rank, (p, i) in enumerate(idx):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


# -- loading -------------------------------------------------------------------------
def load_tables(source: str | Path):
    """(calls, flags) DataFrames from an output folder / .db / records.jsonl / Parquet export."""
    import pandas as pd

    from .export import calls_frame, flags_frame, resolve_db

    p = Path(source)
    if resolve_db(p) is None:
        pq = None
        if p.is_dir() and (p / "calls.parquet").is_file():
            pq = p / "calls.parquet"
        elif p.is_file() and p.suffix == ".parquet":
            pq = p
        if pq is not None:
            calls = pd.read_parquet(pq)
            fp = pq.with_name(pq.name.replace("calls", "flags"))
            flags = pd.read_parquet(fp) if fp != pq and fp.is_file() else pd.DataFrame(columns=["type", "call_id"])
            return calls, flags
    return calls_frame(p), flags_frame(p)


# -- computing -------------------------------------------------------------------------
# The noise analysis reports many numbers; these are the ones a cohort report needs first.
_NOISE_SUFFIXES = ("snr_db", "noise_floor_dbfs", "bak_mos", "background_speech_share")
_NOISE_SCOPES = ("overall", "by_role_customer", "by_role_agent")


def _noise_rank(col: str) -> tuple:
    body = col[len("noise_"):]
    if body.startswith("method"):
        return (9, 9, col)
    suf = next((i for i, x in enumerate(_NOISE_SUFFIXES) if body.endswith(x)), len(_NOISE_SUFFIXES))
    scope = next((i for i, x in enumerate(_NOISE_SCOPES) if body.startswith(x)), len(_NOISE_SCOPES))
    return (suf, scope, col)


def _distribution_columns(calls, extra: tuple[str, ...] = ()) -> list[str]:
    import pandas as pd

    cols = [c for c in ("talk_ratio_agent",) if c in calls.columns]
    noise = [c for c in calls.columns if c.startswith("noise_") and pd.api.types.is_numeric_dtype(calls[c])
             and not pd.api.types.is_bool_dtype(calls[c]) and calls[c].notna().any()]
    noise = [c for c in sorted(noise, key=_noise_rank) if _noise_rank(c)[0] < len(_NOISE_SUFFIXES)]
    for c in extra:
        if c not in calls.columns or not pd.api.types.is_numeric_dtype(calls[c]):
            raise ValueError(f"--metric {c!r}: no numeric column of that name (see `callqa export` for the columns)")
    return list(dict.fromkeys([*cols, *extra, *noise[:MAX_NOISE_COLUMNS]]))


def compute_stats(calls, flags, *, by: str | None = None, compare: tuple[str, str] | None = None,
                  metrics: tuple[str, ...] = (), min_group: int = 1) -> dict:
    """Everything ``callqa stats`` prints, as plain data."""
    import pandas as pd

    if "status" in calls.columns:
        ok = calls[calls["status"] == "ok"].copy()
    else:
        ok = calls.copy()
    if by is not None and by not in ok.columns:
        known = sorted(c for c in ok.columns if not c.startswith(("flags_", "talk_", "noise_")))
        raise ValueError(f"no column {by!r} to group by; metadata columns here: {', '.join(known)}")
    if by is None:
        ok["_group"] = "all"
    else:
        ok["_group"] = ok[by].map(lambda v: "(none)" if v is None or v != v or v == "" else str(v))
    flag_types = sorted(c[len("flags_"):] for c in ok.columns if c.startswith("flags_"))
    dist_cols = _distribution_columns(ok, tuple(metrics))
    groups = []
    for name, g in sorted(ok.groupby("_group"), key=lambda kv: str(kv[0])):
        if len(g) < min_group:
            continue
        n = len(g)
        rates = {}
        for t in flag_types:
            k = int((g[f"flags_{t}"].fillna(0) > 0).sum())
            p, lo, hi = wilson(k, n)
            rates[t] = {"calls_flagged": k, "rate": p, "ci_low": lo, "ci_high": hi,
                        "flags_per_call": float(g[f"flags_{t}"].fillna(0).mean())}
        dists = {c: mean_ci(g[c].tolist()) for c in dist_cols}
        hours = float(g["duration_s"].fillna(0).sum() / 3600) if "duration_s" in g.columns else None
        groups.append({"group": str(name), "calls": n, "audio_hours": hours, "flag_rates": rates,
                       "distributions": dists})
    result: dict[str, Any] = {"by": by, "calls_ok": int(len(ok)), "calls_total": int(len(calls)),
                              "flag_types": flag_types, "distributions": dist_cols, "groups": groups}

    # cohort comparison
    names = [g["group"] for g in groups]
    pair = None
    if compare:
        missing = [c for c in compare if c not in names]
        if missing:
            raise ValueError(f"--compare: no group {', '.join(map(repr, missing))} in column {by!r}; "
                             f"groups: {', '.join(names)}")
        pair = compare
    elif by is not None and len(names) == 2:
        pair = (names[0], names[1])
    if pair:
        result["comparison"] = _compare(ok, pair, flag_types, dist_cols)

    result["precision"] = precision_by_type(flags, by=by)
    return result


def _compare(ok, pair: tuple[str, str], flag_types: list[str], dist_cols: list[str]) -> dict:
    from scipy import stats as st

    a = ok[ok["_group"] == pair[0]]
    b = ok[ok["_group"] == pair[1]]
    rows = []
    for t in flag_types:
        ka, kb = int((a[f"flags_{t}"].fillna(0) > 0).sum()), int((b[f"flags_{t}"].fillna(0) > 0).sum())
        d, lo, hi = newcombe(ka, len(a), kb, len(b))
        p = float(st.fisher_exact([[ka, len(a) - ka], [kb, len(b) - kb]]).pvalue) if len(a) and len(b) else None
        rows.append({"metric": f"rate of {t}", "kind": "rate", "a": ka / len(a) if len(a) else None,
                     "b": kb / len(b) if len(b) else None, "diff": d, "ci_low": lo, "ci_high": hi, "p": p})
    for c in dist_cols:
        w = welch(a[c].tolist(), b[c].tolist())
        rows.append({"metric": f"mean {c}", "kind": "mean", "a": mean_ci(a[c].tolist())["mean"],
                     "b": mean_ci(b[c].tolist())["mean"], "diff": w["diff"], "ci_low": w["ci_low"],
                     "ci_high": w["ci_high"], "p": w["p_welch"], "p_mannwhitney": w["p_mannwhitney"]})
    for r, ph in zip(rows, holm([r["p"] for r in rows])):
        r["p_holm"] = ph
    return {"a": pair[0], "b": pair[1], "n_a": int(len(a)), "n_b": int(len(b)), "rows": rows}


def precision_by_type(flags, *, by: str | None = None) -> list[dict]:
    """Per flag type (and group): confirmed / (confirmed + dismissed) from supervisors' verdicts."""
    if flags is None or len(flags) == 0 or "verdict" not in flags.columns:
        return []
    rev = flags[flags["verdict"].isin(["confirmed", "dismissed"])]
    keys = ["type"] + ([by] if by and by in rev.columns else [])
    out = []
    for key, g in rev.groupby(keys, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        k = int((g["verdict"] == "confirmed").sum())
        n = int(len(g))
        p, lo, hi = wilson(k, n)
        row = {"type": key[0], "reviewed": n, "confirmed": k, "precision": p, "ci_low": lo, "ci_high": hi,
               "raised": int((flags["type"] == key[0]).sum()) if len(keys) == 1 else
               int(((flags["type"] == key[0]) & (flags[by] == key[1])).sum())}
        if len(keys) == 2:
            row["group"] = None if key[1] != key[1] else str(key[1])
        out.append(row)
    return sorted(out, key=lambda r: (r["type"], str(r.get("group"))))


# -- text -------------------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "   -  " if v is None else f"{100 * v:5.1f}%"


def _num(v: float | None, w: int = 7) -> str:
    return " " * (w - 1) + "-" if v is None else f"{v:{w}.3f}"


def _pv(v: float | None) -> str:
    if v is None:
        return "     -"
    return "<0.001" if v < 0.001 else f"{v:6.3f}"


def stats_text(result: dict) -> str:
    lines = [f"callqa stats: {result['calls_ok']} ok calls (of {result['calls_total']})"
             + (f", by {result['by']}" if result["by"] else "")]
    for g in result["groups"]:
        hours = f", {g['audio_hours']:.2f} h" if g.get("audio_hours") is not None else ""
        lines.append(f"\n[{g['group']}] {g['calls']} calls{hours}")
        if g["flag_rates"]:
            lines.append("  flag rate (calls with >=1)          rate   95% CI")
            for t, r in g["flag_rates"].items():
                lines.append(f"    {t:<32} {_pct(r['rate'])}  [{_pct(r['ci_low'])}, {_pct(r['ci_high'])}]"
                             f"  ({r['calls_flagged']}/{g['calls']})")
        if g["distributions"]:
            lines.append("  distribution                                 mean   95% CI                  median    p10     p90")
            for c, d in g["distributions"].items():
                lines.append(f"    {c[:40]:<40} {_num(d['mean'])}  [{_num(d['ci_low'])}, {_num(d['ci_high'])}]"
                             f"  {_num(d['median'])} {_num(d['p10'])} {_num(d['p90'])}  (n={d['n']})")
    cmp_ = result.get("comparison")
    if cmp_:
        lines.append(f"\ncohorts: A = {cmp_['a']} (n={cmp_['n_a']})  vs  B = {cmp_['b']} (n={cmp_['n_b']})")
        lines.append("  metric                                      A        B      A-B    95% CI                p     p(Holm)")
        for r in cmp_["rows"]:
            f = _pct if r["kind"] == "rate" else _num
            lines.append(f"    {r['metric'][:40]:<40} {f(r['a'])} {f(r['b'])} {f(r['diff'])}  [{f(r['ci_low'])},"
                         f" {f(r['ci_high'])}]  {_pv(r['p'])}  {_pv(r['p_holm'])}")
    prec = result.get("precision") or []
    if prec:
        lines.append("\nflag precision from supervisors' verdicts (confirmed / reviewed)")
        for r in prec:
            grp = f" [{r['group']}]" if r.get("group") is not None else ""
            lines.append(f"    {(r['type'] + grp)[:40]:<40} {_pct(r['precision'])}  [{_pct(r['ci_low'])},"
                         f" {_pct(r['ci_high'])}]  {r['confirmed']}/{r['reviewed']} reviewed of {r['raised']} raised")
    else:
        lines.append("\nflag precision: no verdicts yet (review flags in `callqa review`)")
    return "\n".join(lines)


# -- plots ----------------------------------------------------------------------------------
def plot_stats(result: dict, calls, out_dir: str | Path) -> list[Path]:
    """PNG charts: flag rates with CIs, distributions per group, precision per flag type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    groups = result["groups"]
    names = [g["group"] for g in groups]
    types = result["flag_types"]
    if types and groups:
        fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(types) * max(1, len(groups)) / 2 + 3), 4.5))
        width = 0.8 / max(1, len(groups))
        x = np.arange(len(types))
        for i, g in enumerate(groups):
            rates = [g["flag_rates"][t]["rate"] or 0 for t in types]
            lo = [r - (g["flag_rates"][t]["ci_low"] or 0) for r, t in zip(rates, types)]
            hi = [(g["flag_rates"][t]["ci_high"] or 0) - r for r, t in zip(rates, types)]
            ax.bar(x + i * width, [100 * r for r in rates], width, yerr=[[100 * v for v in lo], [100 * v for v in hi]],
                   capsize=3, label=f"{g['group']} (n={g['calls']})")
        ax.set_xticks(x + width * (len(groups) - 1) / 2, types, rotation=30, ha="right")
        ax.set_ylabel("calls flagged (%) with 95% CI")
        ax.set_title("Flag rates" + (f" by {result['by']}" if result["by"] else ""))
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = out / "flag_rates.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    ok = calls[calls["status"] == "ok"] if "status" in calls.columns else calls
    by = result["by"]
    for col in result["distributions"]:
        data = []
        for name in names:
            sel = ok if by is None else ok[ok[by].map(lambda v: "(none)" if v is None or v != v or v == "" else str(v))
                                            == name]
            data.append(sel[col].dropna().astype(float).to_numpy())
        if not any(len(d) for d in data):
            continue
        fig, ax = plt.subplots(figsize=(max(5, 1.3 * len(names) + 2), 4))
        ax.boxplot([d if len(d) else [np.nan] for d in data], showmeans=True)
        ax.set_xticks(range(1, len(names) + 1), [f"{n}\n(n={len(d)})" for n, d in zip(names, data)])
        ax.set_ylabel(col)
        ax.set_title(f"{col}" + (f" by {by}" if by else ""))
        fig.tight_layout()
        p = out / f"dist_{col}.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    prec = [r for r in result.get("precision") or [] if r.get("group") is None]
    if prec:
        fig, ax = plt.subplots(figsize=(max(5, 1.1 * len(prec) + 2), 4))
        vals = [100 * (r["precision"] or 0) for r in prec]
        err = [[100 * ((r["precision"] or 0) - (r["ci_low"] or 0)) for r in prec],
               [100 * ((r["ci_high"] or 0) - (r["precision"] or 0)) for r in prec]]
        ax.bar(range(len(prec)), vals, yerr=err, capsize=3)
        ax.set_xticks(range(len(prec)), [f"{r['type']}\n({r['reviewed']} reviewed)" for r in prec], rotation=20,
                      ha="right")
        ax.set_ylim(0, 105)
        ax.set_ylabel("precision (%) with 95% CI")
        ax.set_title("Flag precision from supervisors' verdicts")
        fig.tight_layout()
        p = out / "precision.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        written.append(p)
    return written
