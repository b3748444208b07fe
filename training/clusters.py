"""Image categories as k-means clusters whose ids stay stable when the clustering is redone.

`kmeans` is plain Lloyd's algorithm with k-means++ seeding (numpy, seeded). `stable_ids` matches
new centroids to the previous ones by a minimum-cost assignment on squared distances (the
Hungarian method: scipy's when installed, else `linear_sum_assignment` here), so a cluster that
is still there keeps its id; a new one takes the smallest unused id. `cluster_stably` does both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Clustering", "cluster_stably", "kmeans", "linear_sum_assignment", "stable_ids"]


@dataclass(frozen=True)
class Clustering:
    """Centroids [k, d] with their stable ids, and each point's cluster id."""

    ids: np.ndarray  # [k] int
    centroids: np.ndarray  # [k, d] float32
    labels: np.ndarray  # [n] int: the id (not the row) of each point's cluster

    def sizes(self) -> np.ndarray:
        """Points per cluster, in the order of `ids`."""
        return np.array([(self.labels == i).sum() for i in self.ids], dtype=np.int64)


def _sq_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum((x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :], 0.0)


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 100, tol: float = 1e-6
           ) -> tuple[np.ndarray, np.ndarray]:
    """(centroids [k, d], row of each point's centroid [n]) by k-means++ and Lloyd iterations.

    Raises ValueError when there are fewer distinct points than `k`.
    """
    x = np.asarray(x, dtype=np.float64)
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    if len(np.unique(x, axis=0)) < k:
        raise ValueError(f"k={k} clusters need at least {k} distinct points; found {len(np.unique(x, axis=0))}")
    rng = np.random.default_rng(seed)
    centroids = [x[rng.integers(len(x))]]
    closest = _sq_distances(x, centroids[0][None])[:, 0]
    for _ in range(1, k):
        pick = rng.choice(len(x), p=closest / closest.sum())
        centroids.append(x[pick])
        closest = np.minimum(closest, _sq_distances(x, x[pick][None])[:, 0])
    c = np.stack(centroids)
    for _ in range(iters):
        distances = _sq_distances(x, c)
        rows = distances.argmin(1)
        moved = c.copy()
        for j in range(k):
            members = x[rows == j]
            # an emptied cluster restarts at the point farthest from its centroid
            moved[j] = members.mean(0) if len(members) else x[distances.min(1).argmax()]
        shift = float(((moved - c) ** 2).sum())
        c = moved
        if shift <= tol:
            break
    return c.astype(np.float32), _sq_distances(x, c).argmin(1)


def linear_sum_assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a minimum-cost assignment (each row and column used at most once),
    like `scipy.optimize.linear_sum_assignment`; uses scipy when it is installed."""
    cost = np.asarray(cost, dtype=np.float64)
    try:
        from scipy.optimize import linear_sum_assignment as scipy_lsa
    except ImportError:
        pass
    else:
        rows, cols = scipy_lsa(cost)
        return np.asarray(rows), np.asarray(cols)
    if cost.shape[0] > cost.shape[1]:
        cols, rows = linear_sum_assignment(cost.T)
        order = np.argsort(rows)
        return rows[order], cols[order]
    return _hungarian(cost)


def _hungarian(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shortest augmenting paths with potentials, O(n² m), for n rows <= m columns."""
    n, m = cost.shape
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    match = np.zeros(m + 1, dtype=np.int64)  # match[j]: the row (1-based) holding column j
    way = np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = match[j0]
            free = ~used[1:]
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(candidates.argmin()) + 1
            delta = candidates[j1 - 1]
            u[match[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    cols = np.nonzero(match[1:])[0]
    rows = match[1:][cols] - 1
    order = np.argsort(rows)
    return rows[order], cols[order]


def stable_ids(new: np.ndarray, old: np.ndarray | None = None, old_ids: Sequence[int] = ()) -> np.ndarray:
    """An id for each new centroid: the id of the old centroid it is matched to (minimum total
    squared distance), else the smallest id not used."""
    ids = np.full(len(new), -1, dtype=np.int64)
    if old is not None and len(old):
        rows, cols = linear_sum_assignment(_sq_distances(np.asarray(new, np.float64), np.asarray(old, np.float64)))
        ids[rows] = np.asarray(old_ids, dtype=np.int64)[cols]
    taken = set(ids[ids >= 0].tolist())
    fresh = (i for i in range(len(new) + len(taken) + 1) if i not in taken)
    for row in np.nonzero(ids < 0)[0]:
        ids[row] = next(fresh)
    return ids


def cluster_stably(x: np.ndarray, k: int, *, previous: tuple[Sequence[int], np.ndarray] | None = None,
                   seed: int = 0) -> Clustering:
    """k-means of `x`, its clusters named by `stable_ids` against `previous` (ids, centroids)."""
    centroids, rows = kmeans(x, k, seed=seed)
    old_ids, old = previous if previous is not None else ((), None)
    ids = stable_ids(centroids, old, old_ids)
    return Clustering(ids=ids, centroids=centroids, labels=ids[rows])
