"""The report's figures (matplotlib, object API: no global state, safe in any thread)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from numpy.typing import NDArray

from hyperagents.archive import ancestry, tree_rows
from hyperagents.reports._data import ReportData, flatten_numbers
from hyperagents.storages import RunRecord, VariantRecord, VariantState

__all__ = [
    "plot_costs",
    "plot_learning_curves",
    "plot_lineage",
    "plot_meta_drift",
]

_DPI = 130


def _color(index: int) -> Any:
    import matplotlib

    return matplotlib.colormaps["tab10"](index % 10)


def _matrix(data: ReportData, mode: str, column: str, *, fill: bool = True) -> NDArray[np.float64]:
    """Runs of ``mode`` × generations; ``fill`` carries each value forward over generations
    without one (NaN before the first), else those stay NaN."""
    runs = data.runs_of(mode)
    last = max((row["generation"] for row in data.rows), default=0)
    matrix = np.full((len(runs), last + 1), np.nan)
    for i, run in enumerate(runs):
        current = np.nan
        by_generation = {row["generation"]: row for row in data.rows_of(run)}
        for g in range(last + 1):
            row = by_generation.get(g)
            if row is not None and row[column] is not None:
                current = float(row[column])
            elif not fill:
                current = np.nan
            matrix[i, g] = current
    return matrix


def _band(
    matrix: NDArray[np.float64], seed: int = 0, resamples: int = 2000
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Median over runs per generation, with a 95% percentile-bootstrap band (over runs)."""
    median = _nanmedian(matrix, axis=0) if matrix.size else np.array([])
    n = matrix.shape[0]
    if n < 2:
        return median, median, median
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n, size=(resamples, n))
    medians = _nanmedian(matrix[picks], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns early on
        low, high = np.nanpercentile(medians, [2.5, 97.5], axis=0)
    return median, low, high


def _nanmedian(values: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    """``np.nanmedian``, quietly NaN where a slice has no value yet (e.g. before a run's first
    score)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.asarray(np.nanmedian(values, axis=axis), dtype=float)


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, dpi=_DPI, bbox_inches="tight")
    return path


def plot_learning_curves(data: ReportData, path: Path) -> Path:
    """Best val so far and the champion's test score against stage evaluations (arms compared
    at equal evaluations, whatever each spends per generation): median and 95% band."""
    figure = Figure(figsize=(11, 4.2), layout="constrained")
    axes = figure.subplots(1, 2, sharex=True)
    panels = (("best_val", "best val score so far"), ("champion_test", "champion's test score"))
    grid = _evaluation_grid(data)
    for ax, (column, label) in zip(axes, panels, strict=True):
        for index, mode in enumerate(data.modes):
            matrix = _matrix_by_evaluations(data, mode, column, grid)
            if not matrix.size or np.all(np.isnan(matrix)):
                continue
            median, low, high = _band(matrix)
            n = matrix.shape[0]
            color = _color(index)
            ax.plot(grid, median, color=color, lw=2, label=f"{mode} (median of {n})")
            if n > 1:
                ax.fill_between(grid, low, high, color=color, alpha=0.18, lw=0)
        ax.set_xlabel("stage evaluations")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.set_title(label.capitalize())
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, loc="lower right", fontsize=9)
    figure.suptitle(f"{data.name}: learning curves (bands: 95% bootstrap CI of the median)")
    return _save(figure, path)


#: Most points of a learning curve's evaluation axis.
_GRID_POINTS = 400


def _evaluation_grid(data: ReportData) -> NDArray[np.int64]:
    """The evaluation counts the learning curves are drawn at: 0 to the fewest any run made
    (where the statistics compare the arms; past it, a median would be over fewer runs)."""
    most = data.equal_budget() or 0
    step = max(1, -(-most // _GRID_POINTS))
    return np.arange(0, most + 1, step, dtype=np.int64)


def _matrix_by_evaluations(
    data: ReportData, mode: str, column: str, grid: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Runs of ``mode`` × ``grid``: the value the run's rows had once it had made that many
    evaluations (NaN before its first value and after its last evaluation)."""
    runs = data.runs_of(mode)
    matrix = np.full((len(runs), grid.size), np.nan)
    for i, run in enumerate(runs):
        rows = data.rows_of(run)
        spent = np.array([row["evaluations"] for row in rows], dtype=np.int64)
        values = np.array([np.nan if row[column] is None else float(row[column]) for row in rows])
        values = _carry_forward(values)
        index = np.searchsorted(spent, grid, side="right") - 1
        inside = (index >= 0) & (grid <= (spent[-1] if spent.size else -1))
        matrix[i, inside] = values[index[inside]]
    return matrix


def _carry_forward(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """Each NaN replaced by the last value before it (NaN where there is none)."""
    out = values.copy()
    for j in range(1, out.size):
        if np.isnan(out[j]):
            out[j] = out[j - 1]
    return out


def _meta_series(data: ReportData) -> dict[str, dict[str, NDArray[np.float64]]]:
    """Per meta parameter, per mode: runs × generations of the value each child wrote."""
    last = max((row["generation"] for row in data.rows), default=0)
    values: dict[str, dict[str, NDArray[np.float64]]] = {}
    for mode in data.modes:
        runs = data.runs_of(mode)
        for i, run in enumerate(runs):
            for v in data.variants[run.id]:
                meta = v.meta_info.get("meta") if isinstance(v.meta_info, dict) else None
                for key, value in flatten_numbers(meta).items():
                    per_mode = values.setdefault(key, {})
                    if mode not in per_mode:
                        per_mode[mode] = np.full((len(runs), last + 1), np.nan)
                    per_mode[mode][i, v.generation] = value
    return values


def _median_varies(per_mode: dict[str, NDArray[np.float64]]) -> bool:
    """Whether the median curve of some mode is not flat (a flat one says nothing)."""
    for matrix in per_mode.values():
        median = _nanmedian(matrix, axis=0)
        finite = median[np.isfinite(median)]
        if finite.size and float(finite.max() - finite.min()) > 0:
            return True
    return False


def _priority(key: str) -> tuple[int, str]:
    """Step sizes first, then exploration, operator weights, the rest (counters last)."""
    lowered = key.lower()
    for rank, words in enumerate(
        (("step", "scale", "sigma"), ("explor",), ("mutation",), ("weight",), ("tau",))
    ):
        if any(word in lowered for word in words):
            return rank, key
    if any(word in lowered for word in ("failure", "count", "success")):
        return 9, key
    return 6, key


def plot_meta_drift(data: ReportData, path: Path, *, limit: int = 6) -> Path | None:
    """The meta agent's own numeric parameters over generations (median over seeds).

    Returns:
        The figure's path, or ``None`` when no child recorded numeric meta parameters (e.g. an
        LLM meta agent, whose strategy is prose).
    """
    series = _meta_series(data)
    varying = sorted(
        (key for key, per_mode in series.items() if _median_varies(per_mode)), key=_priority
    )
    if not varying:
        return None
    keys = varying[:limit]
    columns = min(3, len(keys))
    rows = (len(keys) + columns - 1) // columns
    figure = Figure(figsize=(4.2 * columns, 3.2 * rows), layout="constrained")
    axes: list[Axes] = list(figure.subplots(rows, columns, squeeze=False).ravel())
    for ax, key in zip(axes, keys, strict=False):
        for index, mode in enumerate(data.modes):
            matrix = series[key].get(mode)
            if matrix is None or np.all(np.isnan(matrix)):
                continue
            x = np.arange(matrix.shape[1])
            median = _nanmedian(matrix, axis=0)
            ax.plot(x, median, color=_color(index), lw=1.6, label=mode, marker=".", ms=3)
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=len(handles))
    shown = f"{len(keys)} of {len(varying)}" if len(varying) > len(keys) else f"{len(keys)}"
    figure.suptitle(f"{data.name}: meta-agent parameter drift ({shown} that changed; median)")
    return _save(figure, path)


def plot_lineage(data: ReportData, run: RunRecord, path: Path) -> Path:
    """The run's archive as a tree: x generation, colour val score, champion path in red."""
    variants = data.variants[run.id]
    y = tree_rows(variants)
    rows = max(y.values(), default=0.0) + 1  # leaves
    complete = [v for v in variants if v.state is VariantState.COMPLETE and "val" in v.scores]
    champion = max(complete, key=lambda v: (v.scores["val"], -v.generation), default=None)
    path_ids = set(ancestry(variants, champion.id if champion is not None else None))
    height = max(3.5, min(14.0, 0.12 * rows + 2))
    figure = Figure(figsize=(11, height), layout="constrained")
    ax = figure.subplots()
    _lineage_edges(ax, variants, y, path_ids)
    others = [v for v in variants if v not in complete]
    _lineage_points(figure, ax, others, complete, y, path_ids)
    if champion is not None:
        _label_champion(ax, champion, variants, y)
    ax.set_xlabel("generation")
    ax.set_yticks([])
    ax.set_title(f"{run.name}: lineage ({len(variants)} variants; champion's path in red)")
    if others:
        ax.legend(loc="upper left", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def _lineage_edges(
    ax: Axes, variants: list[VariantRecord], y: dict[int, float], path_ids: set[int]
) -> None:
    """A line from each variant's parent to it; the champion's path thick and red."""
    by_id = {v.id: v for v in variants}
    for v in variants:
        if v.parent_id in by_id:
            parent = by_id[v.parent_id]
            on_path = v.id in path_ids and parent.id in path_ids
            ax.plot(
                [parent.generation, v.generation],
                [y[parent.id], y[v.id]],
                color="crimson" if on_path else "0.75",
                lw=2.2 if on_path else 0.6,
                zorder=2 if on_path else 1,
            )


def _lineage_points(
    figure: Figure,
    ax: Axes,
    others: list[VariantRecord],
    scored: list[VariantRecord],
    y: dict[int, float],
    path_ids: set[int],
) -> None:
    """The variants: crosses for those without a val score, dots coloured by it for the
    others (those on the champion's path larger, ringed in red), with the colour bar."""
    import matplotlib

    if others:
        ax.scatter(
            [v.generation for v in others],
            [y[v.id] for v in others],
            c="0.8",
            s=10,
            marker="x",
            lw=0.8,
            label="failed / invalid / pruned",
            zorder=3,
        )
    if scored:
        values = np.array([v.scores["val"] for v in scored])
        points = ax.scatter(
            [v.generation for v in scored],
            [y[v.id] for v in scored],
            c=values,
            cmap=matplotlib.colormaps["viridis"],
            s=[60 if v.id in path_ids else 18 for v in scored],
            edgecolors=["crimson" if v.id in path_ids else "none" for v in scored],
            linewidths=1.2,
            zorder=4,
        )
        figure.colorbar(points, ax=ax, label="val score")


def _label_champion(
    ax: Axes, champion: VariantRecord, variants: list[VariantRecord], y: dict[int, float]
) -> None:
    """Name the champion beside its dot, on the side with room (the text stays inside)."""
    right_half = champion.generation > max(v.generation for v in variants) / 2
    ax.annotate(
        f"champion (generation {champion.generation}, val {champion.scores['val']:.3f})",
        (champion.generation, y[champion.id]),
        xytext=(-10 if right_half else 10, -14),
        textcoords="offset points",
        ha="right" if right_half else "left",
        fontsize=9,
        color="crimson",
    )


def plot_costs(data: ReportData, path: Path) -> Path:
    """Time per generation and, when an LLM was used, tokens per generation (median)."""
    has_tokens = any(row["llm_tokens"] for row in data.rows)
    panels = [("seconds", "engine + sandbox time per generation (s)")]
    panels.append(
        ("llm_tokens", "LLM tokens per generation")
        if has_tokens
        else ("sandbox_seconds", "sandbox time per generation (s)")
    )
    figure = Figure(figsize=(11, 4), layout="constrained")
    axes = figure.subplots(1, 2, sharex=True)
    for ax, (column, label) in zip(axes, panels, strict=True):
        for index, mode in enumerate(data.modes):
            matrix = _matrix(data, mode, column, fill=False)
            if np.all(np.isnan(matrix)):
                continue
            median = _nanmedian(matrix, axis=0)
            x = np.arange(matrix.shape[1])
            ax.plot(x, median, color=_color(index), lw=1.4, label=mode)
        ax.set_xlabel("generation")
        ax.set_ylabel(label)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.set_title(label.capitalize(), fontsize=11)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        axes[0].legend(handles, labels, fontsize=9)
    figure.suptitle(f"{data.name}: cost per generation (median over seeds)")
    return _save(figure, path)
