"""Static plotly figures that explain a Selection (no widgets: they render in notebooks,
papermill outputs and HTML reports alike)."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from ..errors import WorkbenchError


def pool_map(selection, embeddings=None, labels=None, *, dataset=None, n_clusters: int = 8,
             embedder: str = "minilm", seed: int = 0) -> go.Figure:
    """2-D PCA map of the pool coloured by cluster, the chosen rows outlined.

    Embeddings and cluster labels come from the selection's diagnostics when the strategy
    made them (kmeans, deita), else from the arguments, else are computed from `dataset`."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    emb = embeddings if embeddings is not None else selection.diagnostics.get("embeddings")
    if emb is None:
        if dataset is None:
            raise WorkbenchError("pool_map: pass embeddings= or dataset= (this strategy made no embeddings)")
        from .embeddings import embed
        from .text import to_pool

        emb = embed(to_pool(dataset).texts("both"), embedder)
    emb = np.asarray(emb, dtype=np.float32)
    if labels is None:
        labels = selection.diagnostics.get("labels")
    if labels is None:
        labels = KMeans(n_clusters=min(n_clusters, len(emb)), n_init=3, random_state=seed).fit_predict(emb)
    labels = np.asarray(labels)
    xy = PCA(n_components=2, random_state=seed).fit_transform(emb) if emb.shape[1] > 2 else emb
    chosen = np.zeros(len(emb), bool)
    chosen[selection.indices] = True
    fig = go.Figure()
    for c in np.unique(labels):
        for picked in (False, True):
            m = (labels == c) & (chosen == picked)
            if not m.any():
                continue
            fig.add_trace(go.Scatter(
                x=xy[m, 0], y=xy[m, 1], mode="markers", legendgroup=f"c{c}",
                name=f"cluster {c}" + (" (chosen)" if picked else ""),
                showlegend=picked or not (labels == c)[chosen].any(),
                marker=dict(color=int(c), colorscale="Turbo", cmin=0, cmax=max(1, int(labels.max())),
                            size=9 if picked else 5, opacity=1.0 if picked else 0.25,
                            line=dict(width=1.5 if picked else 0, color="black")),
                customdata=np.where(m)[0], hovertemplate="row %{customdata}<extra></extra>"))
    fig.update_layout(title=f"{selection.strategy}: {chosen.sum()} of {len(emb)} rows on a PCA map "
                            f"({len(np.unique(labels[chosen]))}/{len(np.unique(labels))} clusters covered)",
                      xaxis_title="PC 1", yaxis_title="PC 2", template="plotly_white")
    return fig


def score_histogram(selection, bins: int = 40) -> go.Figure:
    """Scores of the pool and of the chosen rows, with the cut-off (lowest chosen score)."""
    if selection.scores is None:
        raise WorkbenchError(f"score_histogram: strategy {selection.strategy!r} gives no per-row scores")
    s = selection.scores[np.isfinite(selection.scores)]
    chosen = selection.scores[selection.indices]
    chosen = chosen[np.isfinite(chosen)]
    fig = go.Figure()
    fig.add_trace(go.Histogram(x=s, nbinsx=bins, name="pool", marker_color="#9aa5b1", opacity=0.7))
    fig.add_trace(go.Histogram(x=chosen, nbinsx=bins, name="chosen", marker_color="#d9480f", opacity=0.8))
    if len(chosen):
        cut = float(chosen.min())
        fig.add_vline(x=cut, line_dash="dash", annotation_text=f"cut-off {cut:.3g}")
    fig.update_layout(barmode="overlay", title=f"{selection.strategy}: {selection.diagnostics.get('score', 'score')}",
                      xaxis_title="score (higher = preferred)", yaxis_title="rows", template="plotly_white")
    return fig


def coverage(selection) -> go.Figure:
    """Share of each task type before and after selection (needs a category/task column)."""
    before = selection.diagnostics.get("coverage_before")
    if not before:
        raise WorkbenchError("coverage: the dataset has no category/task column")
    after = selection.diagnostics.get("coverage_after", {})
    cats = sorted(before, key=lambda c: -before[c])
    nb, na = sum(before.values()), max(1, sum(after.values()))
    fig = go.Figure([
        go.Bar(x=cats, y=[before[c] / nb for c in cats], name=f"pool ({nb})", marker_color="#9aa5b1"),
        go.Bar(x=cats, y=[after.get(c, 0) / na for c in cats], name=f"chosen ({na})", marker_color="#d9480f"),
    ])
    missing = [c for c in cats if not after.get(c)]
    fig.update_layout(barmode="group", yaxis_tickformat=".0%", template="plotly_white",
                      title=f"{selection.strategy}: task coverage"
                      + (f" — missing {', '.join(missing)}" if missing else ""))
    return fig


def dsir_kl(selection) -> go.Figure:
    """DSIR's hashed n-gram KL to the target, pool vs chosen rows."""
    d = selection.diagnostics
    if "kl_reduction" not in d:
        raise WorkbenchError(f"dsir_kl: strategy {selection.strategy!r} reports no KL reduction")
    fig = go.Figure(go.Bar(x=["pool", "chosen"], y=[d["kl_target_pool"], d["kl_target_selected"]],
                           marker_color=["#9aa5b1", "#d9480f"], text=[f"{d['kl_target_pool']:.3f}",
                                                                      f"{d['kl_target_selected']:.3f}"]))
    fig.update_layout(title=f"KL(target ‖ data) on hashed n-grams: reduction {d['kl_reduction']:.3f}",
                      yaxis_title="KL (nats)", template="plotly_white")
    return fig


def figures(selection, dataset=None) -> list[go.Figure]:
    """Every diagnostic figure that applies to this selection."""
    out = []
    if selection.scores is not None:
        out.append(score_histogram(selection))
    if "embeddings" in selection.diagnostics or dataset is not None:
        out.append(pool_map(selection, dataset=dataset))
    if selection.diagnostics.get("coverage_before"):
        out.append(coverage(selection))
    if "kl_reduction" in selection.diagnostics:
        out.append(dsir_kl(selection))
    return out
