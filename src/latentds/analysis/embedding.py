"""2-D views of a latent space: UMAP coloured by a factor or label (with paths overlaid), and two raw dimensions.

umap-learn is imported only here, on first use: its first import compiles with numba (tens of seconds).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np


def umap_embedding(latents: np.ndarray, *, seed: int = 0, n_neighbors: int = 15) -> np.ndarray:
    """(N, 2) UMAP embedding of the latents (to place other points, e.g. paths, include them in ``latents``).

    The k-nearest-neighbour graph comes from scikit-learn and is handed to UMAP: UMAP's own approximate search
    (pynndescent) spends about a minute compiling with numba in every new process, more than the whole layout.
    """
    import umap  # noqa: PLC0415
    from sklearn.neighbors import NearestNeighbors  # noqa: PLC0415

    points = latents.astype(np.float32)
    k = min(n_neighbors, len(points) - 1)
    distances, indices = NearestNeighbors(n_neighbors=k).fit(points).kneighbors(points)
    reducer = umap.UMAP(n_components=2, n_neighbors=k, random_state=seed, precomputed_knn=(indices, distances, None))
    with warnings.catch_warnings():
        # both say what we chose: one thread for a seeded (reproducible) layout, and a kNN graph from scikit-learn
        # (so UMAP's transform() of new points is unavailable, which the probe never calls)
        warnings.filterwarnings("ignore", message="n_jobs value .* overridden", category=UserWarning)
        warnings.filterwarnings("ignore", message="precomputed_knn.* is not an NNDescent", category=UserWarning)
        return reducer.fit_transform(points)


def scatter(points: np.ndarray, colour: np.ndarray | None, path: Path, *, title: str, colour_label: str = "",
            axes: tuple[str, str] = ("UMAP 1", "UMAP 2"), overlays: dict[str, np.ndarray] | None = None) -> None:
    """Save a scatter plot of 2-D points coloured by ``colour``, with named polylines (paths) drawn over it."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6, 5))
    drawn = ax.scatter(points[:, 0], points[:, 1], c=colour, s=6, cmap="viridis", alpha=0.8)
    if colour is not None:
        fig.colorbar(drawn, ax=ax, label=colour_label)
    for name, line in (overlays or {}).items():
        ax.plot(line[:, 0], line[:, 1], marker="o", markersize=3, linewidth=1.5, label=name)
    if overlays:
        ax.legend(fontsize=8)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title)
    fig.tight_layout()
    from latentds.shardsets.atomic import atomic_path  # noqa: PLC0415

    with atomic_path(path) as tmp:  # a full disk leaves no half-written figure
        fig.savefig(tmp, dpi=100, format=Path(path).suffix.lstrip(".") or "png")
    plt.close(fig)
