"""Study reports: paper-shaped tables (Markdown + HTML) and matplotlib figures (PNG + SVG).

Every number in a table is a TEST metric of the configuration chosen on the VALIDATION metric
(``select.select_best``), as mean ± std over seeds.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from modalrec.experiments.select import select_best, trials_frame, with_deltas
from modalrec.experiments.spec import ReportSpec, parse_spec
from modalrec.experiments.store import Store
from modalrec.io import write_text

PAPER_METRICS = ["recall@10", "recall@20", "ndcg@10", "ndcg@20"]
SKIP_AXES = ("seed", "data.source", "data.seed")
CONDITION_PREFIXES = ("stress.",)


def short(metric: str) -> str:
    """``recall@20`` -> ``R@20`` (the papers' column names)."""
    name, _, k = metric.partition("@")
    return {"recall": "R", "ndcg": "N", "precision": "P", "hit": "HR", "map": "MAP"}.get(name, name) + f"@{k}"


def pretty(metric: str) -> str:
    """``recall@20`` -> ``Recall@20`` (axis labels)."""
    name, _, k = metric.partition("@")
    return {"ndcg": "NDCG", "map": "MAP", "hit": "HitRate"}.get(name, name.capitalize()) + (f"@{k}" if k else "")


def fmt(mean: Any, std: Any = float("nan")) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    s = f"{mean:.4f}"
    return s + (f" ± {std:.4f}" if std is not None and not math.isnan(std) else "")


@dataclass
class Table:
    """A rendered-agnostic table: header, string cells, bold cells, a caption."""

    title: str
    header: list[str]
    rows: list[list[str]]
    bold: set[tuple[int, int]] = field(default_factory=set)
    note: str = ""

    def markdown(self) -> str:
        def cell(r: int, c: int, v: str) -> str:
            v = v.replace("|", "\\|")
            return f"**{v}**" if (r, c) in self.bold else v

        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.header) + " |")
        lines.append("|" + "|".join(":---" if i == 0 else "---:" for i in range(len(self.header))) + "|")
        for r, row in enumerate(self.rows):
            lines.append("| " + " | ".join(cell(r, c, v) for c, v in enumerate(row)) + " |")
        if self.note:
            lines += ["", f"*{self.note}*"]
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        out = [f"<h3>{html.escape(self.title)}</h3>", "<table>", "<thead><tr>"]
        out += [f"<th>{html.escape(h)}</th>" for h in self.header]
        out.append("</tr></thead><tbody>")
        for r, row in enumerate(self.rows):
            cells = []
            for c, v in enumerate(row):
                v = html.escape(v)
                cells.append(f"<td>{f'<b>{v}</b>' if (r, c) in self.bold else v}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</tbody></table>")
        if self.note:
            out.append(f"<p class='note'>{html.escape(self.note)}</p>")
        return "\n".join(out)


# -- tables -----------------------------------------------------------------------------------
def _order(values: pd.Series) -> list[Any]:
    return list(dict.fromkeys(values.tolist()))


def overall_table(best: pd.DataFrame, metrics: list[str], sel_metric: str) -> Table:
    """Table 1: methods x (datasets x metrics), test mean ± std, the best mean per column in bold."""
    datasets, methods = _order(best["dataset"]), _order(best["method"])
    header = ["Method"] + [f"{d} {short(m)}" if len(datasets) > 1 else short(m) for d in datasets for m in metrics]
    rows, bold, cols = [], set(), []
    idx = best.set_index(["method", "dataset"])
    for d in datasets:
        for m in metrics:
            cols.append((d, m))
    for meth in methods:
        row = [meth]
        for d, m in cols:
            if (meth, d) in idx.index and f"test.{m}" in idx:
                r = idx.loc[(meth, d)]
                row.append(fmt(r[f"test.{m}"], r.get(f"test.{m}:std", float("nan"))))
            else:
                row.append("–")
        rows.append(row)
    for ci, (d, m) in enumerate(cols, start=1):
        vals = [idx.loc[(meth, d)][f"test.{m}"] if (meth, d) in idx.index and f"test.{m}" in idx else -np.inf
                for meth in methods]  # fmt: skip
        if vals and np.isfinite(max(vals)):
            top = max(vals)
            bold |= {(ri, ci) for ri, v in enumerate(vals) if v == top}
    seeds = sorted(set(best["n_seeds"]))
    note = (
        f"Test metrics of the configuration selected on validation {sel_metric} (never on test); "
        f"mean ± std over {'/'.join(map(str, seeds))} seed(s); best per column in bold."
    )
    title = "Table 1: overall performance" + (f" on {datasets[0]}" if len(datasets) == 1 else "")
    return Table(title, header, rows, bold, note)


def delta_table(best: pd.DataFrame, metrics: list[str], baseline: str | None) -> Table | None:
    """Table 2: backbone vs backbone+method (or every method vs the baseline) with Δ% rows."""
    methods = _order(best["method"])
    pairs = [(m.split("+")[0], m) for m in methods if "+" in m and m.split("+")[0] in methods]
    title = "Table 2: backbone vs backbone + method"
    if not pairs and baseline in methods:
        title = f"Table 2: every method vs the baseline {baseline}"
        pairs = [(baseline, m) for m in methods if m != baseline]
    if not pairs:
        return None
    cols = [f"test.{m}" for m in metrics if f"test.{m}" in best]
    header = ["Dataset", "Model"] + [short(c.removeprefix("test.")) for c in cols]
    rows, bold = [], set()
    for d in _order(best["dataset"]):
        sub = best[best["dataset"] == d]
        shown = None
        for base, var in pairs:
            if base not in set(sub["method"]) or var not in set(sub["method"]):
                continue
            dl = with_deltas(sub[sub["method"].isin([base, var])], base, cols).set_index("method")
            b, v = dl.loc[base], dl.loc[var]
            if base != shown:  # the baseline row once per run of comparisons against it
                rows.append([d, base] + [fmt(b[c], b.get(f"{c}:std", float("nan"))) for c in cols])
                shown = base
            rows.append([d, var] + [fmt(v[c], v.get(f"{c}:std", float("nan"))) for c in cols])
            deltas = [v[f"{c}:delta%"] for c in cols]
            rows.append(["", "Δ%"] + [f"{x:+.2f}%" if not math.isnan(x) else "–" for x in deltas])
            for ci, x in enumerate(deltas, start=2):
                if x > 0:
                    bold.add((len(rows) - 1, ci))
    if not rows:
        return None
    note = "Δ% = 100 · (variant − backbone) / backbone on the test metric means; positive changes in bold."
    return Table(title, header, rows, bold, note)


def _mark(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return "✓" if v else "✗"
    if isinstance(v, int | float) and v == 0:
        return "✗"
    return f"✓ ({v})" if isinstance(v, int | float) else str(v)


def condition_keys(swept: list[str]) -> list[str]:
    """Swept keys that set the test condition (corruptions), not a method's setting: never selected over."""
    return [k for k in swept if k.startswith(CONDITION_PREFIXES)]


def _is_off(v: Any) -> bool:
    return v is None or v is False or v == 0 or v == {} or (isinstance(v, float) and math.isnan(v))


def clean_rows(df: pd.DataFrame, swept: list[str]) -> tuple[pd.DataFrame, str]:
    """Trials at the clean condition (every swept ``stress.*`` key off), for Tables 1-2; all when none is."""
    conds = [k for k in condition_keys(swept) if k in df]
    if not conds:
        return df, ""
    mask = np.ones(len(df), dtype=bool)
    for k in conds:
        mask &= df[k].map(_is_off).to_numpy(bool)
    if not mask.any():
        return df, f" No clean trials: rows pool the conditions {', '.join(conds)}."
    return df[mask], f" Clean data only ({', '.join(conds)} = 0); see the figures for the other conditions."


def ablation_keys(df: pd.DataFrame, swept: list[str], rep: ReportSpec) -> list[str]:
    """Keys shown with check marks: ``report.ablation``, else swept keys that are on/off (bool, or include 0).

    Method keys count too (an ablation study's methods are often its switches); conditions never do.
    """
    if rep.ablation:
        return [k for k in rep.ablation if k in df]
    keys = []
    for k in swept:
        if k in SKIP_AXES or k not in df or k.startswith(CONDITION_PREFIXES):
            continue
        vals = [v for v in df[k].dropna().unique().tolist()]
        if len(vals) >= 2 and (all(isinstance(v, bool) for v in vals) or any(v == 0 for v in vals)):
            keys.append(k)
    return keys


def ablation_table(df: pd.DataFrame, keys: list[str], metrics: list[str], sel_metric: str) -> Table | None:
    """Ablation: one row per (method, dataset, on/off combination), check marks, test mean ± std."""
    if not keys:
        return None
    best = select_best(df, sel_metric, by=["method", "dataset", *keys])
    cols = [f"test.{m}" for m in metrics if f"test.{m}" in best]
    header = ["Method", "Dataset", *keys] + [short(c.removeprefix("test.")) for c in cols]
    rows, bold = [], set()
    for (_, _), sub in best.groupby(["method", "dataset"], sort=False):
        start = len(rows)
        for _, r in sub.iterrows():
            rows.append([r["method"], r["dataset"], *[_mark(r[k]) for k in keys]]
                        + [fmt(r[c], r.get(f"{c}:std", float("nan"))) for c in cols])  # fmt: skip
        for ci, c in enumerate(cols, start=2 + len(keys)):
            top = sub[c].max()
            bold |= {(start + i, ci) for i, v in enumerate(sub[c]) if v == top}
    note = f"Each row: best other settings on validation {sel_metric}; ✓ on, ✗ off; test mean ± std over seeds."
    return Table("Ablation", header, rows, bold, note)


# -- figures ----------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 11, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def _save(fig: Any, out: Path, name: str) -> list[str]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out / f"{name}.{ext}"
        tmp = out / f".{name}.tmp.{ext}"
        fig.savefig(tmp, bbox_inches="tight")
        tmp.replace(p)
        paths.append(str(p))
    _plt().close(fig)
    return paths


def metric_vs_figure(
    df: pd.DataFrame, x: str, y: str, line: str, split: str, sel_metric: str, out: Path, title: str | None = None
) -> list[str]:
    """``y`` vs swept key ``x``, one line per ``line`` value, error band = ± std over seeds; one panel per dataset."""
    plt = _plt()
    col = f"{split}.{y}"
    best = select_best(df, sel_metric, by=[line, "dataset", x])
    if best.empty or col not in best:
        return []
    datasets = _order(best["dataset"])
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.5 * len(datasets), 4.2), squeeze=False)
    numeric = pd.api.types.is_numeric_dtype(best[x]) and not pd.api.types.is_bool_dtype(best[x])
    cats = sorted(best[x].astype(str).unique()) if not numeric else []
    for ax, d in zip(axes[0], datasets):
        sub = best[best["dataset"] == d]
        for lv in _order(sub[line]):
            s = sub[sub[line] == lv]
            s = s.sort_values(x) if numeric else s.assign(_x=s[x].astype(str)).sort_values("_x")
            xs = s[x].to_numpy(float) if numeric else np.array([cats.index(v) for v in s[x].astype(str)], float)
            m, sd = s[col].to_numpy(float), s[f"{col}:std"].to_numpy(float)
            ax.plot(xs, m, marker="o", label=str(lv))
            if (s["n_seeds"] > 1).any() and np.isfinite(sd).any():
                ax.fill_between(xs, m - np.nan_to_num(sd), m + np.nan_to_num(sd), alpha=0.2)
        if not numeric:
            ax.set_xticks(range(len(cats)), cats)
        else:
            if (best[x] > 0).all() and best[x].max() / best[x].min() >= 4:  # e.g. learning rates
                ax.set_xscale("log")
            ticks = sorted(best[x].unique())
            if len(ticks) <= 8:  # label exactly the swept values
                ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
                ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xlabel(x)
        ax.set_ylabel(f"{pretty(y)} ({split})")
        ax.set_title(f"{d}")
        ax.legend(title=line, fontsize=9)
    seeds = int(best["n_seeds"].max())
    band = f", band = ±1 std over {seeds} seeds" if seeds > 1 else ""
    fig.suptitle(title or f"{pretty(y)} vs {x}{band}")
    fig.tight_layout()
    return _save(fig, out, _slug(f"{y}_vs_{x}_by_{line}_{split}"))


def curve_figures(df: pd.DataFrame, curves: dict[str, list[dict[str, Any]]], metric: str, out: Path) -> list[str]:
    """Validation ``metric`` per epoch of each method's selected config (mean ± std over seeds), per dataset."""
    plt = _plt()
    best = select_best(df, metric, by=["method", "dataset"])
    paths: list[str] = []
    for d in _order(best["dataset"]):
        fig, ax = plt.subplots(figsize=(6.5, 4.2))
        drew = False
        for _, b in best[best["dataset"] == d].iterrows():
            hashes = df[(df["group"] == b["group"]) & (df["method"] == b["method"]) & (df["dataset"] == d)]["hash"]
            points = pd.DataFrame(
                [{"epoch": c["epoch"], "v": c["valid"].get(metric)} for h in hashes for c in curves.get(h) or []]
            )
            if points.empty:
                continue
            g = points.groupby("epoch")["v"].agg(["mean", "std", "count"]).reset_index()
            ax.plot(g["epoch"] + 1, g["mean"], label=str(b["method"]))
            if (g["count"] > 1).any():
                sd = g["std"].fillna(0)
                ax.fill_between(g["epoch"] + 1, g["mean"] - sd, g["mean"] + sd, alpha=0.2)
            drew = True
        if not drew:
            plt.close(fig)
            continue
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_ylabel(f"{pretty(metric)} (validation)")
        ax.set_title(f"Training curves on {d} (selected configs, ± std over seeds)")
        ax.legend(title="method", fontsize=9)
        fig.tight_layout()
        paths += _save(fig, out, _slug(f"training_curves_{d}"))
    return paths


# -- the report -------------------------------------------------------------------------------
def study_report_spec(store: Store) -> ReportSpec:
    """The ``report`` section of the spec stored with the study (defaults when absent)."""
    text = store.meta().get("spec")
    return parse_spec(yaml.safe_load(text), "<study spec>").report if text else ReportSpec()


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f3f3}.note{color:#555;font-style:italic}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}"""


def write_report(study_dir: str | Path) -> dict[str, Any]:
    """Write ``report/report.md``, ``report/report.html`` and ``report/figures/*.png|svg``; return their paths."""
    study = Path(study_dir)
    with Store(study, create=False) as store:
        rep = study_report_spec(store)
        meta = store.meta()
        counts = store.counts()
        df = trials_frame(store, rep.method)
        failed = trials_frame(store, rep.method, status="failed")
        curves = {r["hash"]: r["curve"] for r in store.rows("done")}
        versions = next((r["versions"] for r in store.rows("done") if r["versions"]), {})
        commit = next((r["git_commit"] for r in store.rows("done") if r["git_commit"]), None)
    out, figdir = study / "report", study / "report" / "figures"
    name = meta.get("name", study.name)
    md = [f"# Study report: {name}", ""]
    md.append(
        f"Trials: {counts['done']} done, {counts['failed']} failed, {counts['pending'] + counts['running']} not run"
        + (f" ({counts['stale']} stale trials of earlier specs not shown)" if counts["stale"] else "")
        + ". "
        f"Selection metric: validation {rep.metric}. modalrec {versions.get('modalrec', '?')}, "
        f"torch {versions.get('torch', '?')}, git {commit or 'n/a'}."
    )
    md.append("")
    tables: list[Table] = []
    figures: list[str] = []
    if not df.empty and f"valid.{rep.metric}" in df:
        metrics = [m for m in PAPER_METRICS if f"test.{m}" in df]
        swept = list(meta.get("swept_keys") or [])
        clean, cond_note = clean_rows(df, swept)
        best = select_best(clean, rep.metric)
        if "overall" in rep.tables:
            t = overall_table(best, metrics, rep.metric)
            t.note += cond_note
            tables.append(t)
        if "delta" in rep.tables:
            t = delta_table(best, metrics, rep.baseline)
            if t is not None:
                t.note += cond_note
                tables.append(t)
        if "ablation" in rep.tables:
            t = ablation_table(df, ablation_keys(df, swept, rep), metrics, rep.metric)
            if t is not None:
                tables.append(t)
        tables.append(config_table(best, clean, swept, rep))
        done_x = set()
        for f in rep.figures:
            if f["x"] not in df:
                continue
            line = f.get("line", "method")
            line = "method" if line in rep.method and len(rep.method) == 1 else line
            figures += metric_vs_figure(
                df, f["x"], f.get("y", rep.metric), line if line in df else "method", f.get("split", "test"),
                rep.metric, figdir, f.get("title"),
            )  # fmt: skip
            done_x.add(f["x"])
        for k in swept:  # sensitivity curves for every other swept key with several values
            if k in done_x or k in SKIP_AXES or k in rep.method or k not in df or df[k].nunique() < 2:
                continue
            figures += metric_vs_figure(df, k, rep.metric, "method", "test", rep.metric, figdir)
        figures += curve_figures(clean, curves, rep.metric, figdir)
    else:
        md.append("No finished trials yet.\n")
    for t in tables:
        md.append(t.markdown())
    pngs = [Path(p) for p in figures if p.endswith(".png")]
    if pngs:
        md.append("## Figures\n")
        md += [f"![{p.stem}](figures/{p.name})\n" for p in pngs]
    if not failed.empty:
        md.append("## Failed trials\n")
        md += [f"- `{r['hash']}` ({r['method']}, seed {r['seed']}): {str(r['error']).splitlines()[0]}"
               for _, r in failed.iterrows()]  # fmt: skip
        md.append("")
    body_html = [f"<h1>Study report: {html.escape(name)}</h1>", f"<p>{html.escape(md[2])}</p>"]
    body_html += [t.html() for t in tables]
    if pngs:
        body_html.append("<h2>Figures</h2>")
        body_html += [f"<img src='figures/{p.name}' alt='{html.escape(p.stem)}'>" for p in pngs]
    if not failed.empty:
        body_html.append("<h2>Failed trials</h2><ul>")
        body_html += [f"<li><code>{r['hash']}</code> ({html.escape(str(r['method']))}): "
                      f"{html.escape(str(r['error']).splitlines()[0])}</li>" for _, r in failed.iterrows()]  # fmt: skip
        body_html.append("</ul>")
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(name)}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body_html) + "\n</body></html>\n"
    )
    write_text(out / "report.md", "\n".join(md))
    write_text(out / "report.html", page)
    return {"markdown": str(out / "report.md"), "html": str(out / "report.html"), "figures": figures}


def config_table(best: pd.DataFrame, df: pd.DataFrame, swept: list[str], rep: ReportSpec) -> Table:
    """Which configuration was selected per (method, dataset), with its validation score."""
    keys = [k for k in swept if k not in SKIP_AXES and k not in rep.method and k in df]
    header = ["Method", "Dataset", "seeds", f"valid {short(rep.metric)}", *keys]
    rows = []
    for _, b in best.iterrows():
        one = df[df["group"] == b["group"]].iloc[0]
        rows.append([str(b["method"]), str(b["dataset"]), str(int(b["n_seeds"])),
                     fmt(b[f"valid.{rep.metric}"], b.get(f"valid.{rep.metric}:std", float("nan")))]
                    + [str(one[k]) for k in keys])  # fmt: skip
    return Table("Selected configurations (on validation)", header, rows)
