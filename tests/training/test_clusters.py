"""k-means image categories whose ids survive re-clustering."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from emopulse.training.clusters import cluster_stably, kmeans, linear_sum_assignment, stable_ids


@pytest.mark.parametrize("shape", [(3, 3), (2, 5), (5, 2), (4, 4), (1, 3)])
def test_assignment_is_minimal_like_brute_force(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for _ in range(20):
        cost = rng.random(shape)
        rows, cols = linear_sum_assignment(cost)
        n, m = shape
        best = min(
            sum(cost[i, j] for i, j in zip(range(n), p, strict=False)) if n <= m
            else sum(cost[i, j] for i, j in zip(p, range(m), strict=False))
            for p in itertools.permutations(range(max(n, m)), min(n, m))
        )
        assert cost[rows, cols].sum() == pytest.approx(best)
        assert len(set(rows)) == len(set(cols)) == min(n, m)


def blobs(rng: np.random.Generator, centers: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    which = rng.integers(len(centers), size=n)
    return centers[which] + rng.normal(scale=0.3, size=(n, centers.shape[1])), which


def test_cluster_ids_stay_stable_when_reclustered_with_new_images() -> None:
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)) * 4
    x, _ = blobs(rng, centers, 120)
    first = cluster_stably(x, 4, seed=0)
    more, _ = blobs(rng, centers, 60)
    y = np.concatenate([more, x])[rng.permutation(180)]
    # pick a seed whose raw k-means numbers the clusters differently: matching must fix that
    seed = next(s for s in range(1, 50) if not _same_partition_ids(kmeans(y, 4, seed=s)[1], first, x, y))
    second = cluster_stably(y, 4, seed=seed, previous=(first.ids, first.centroids))
    assert _same_partition_ids(second.labels, first, x, y)
    assert sorted(second.ids) == [0, 1, 2, 3]


def _same_partition_ids(labels_y: np.ndarray, first, x: np.ndarray, y: np.ndarray) -> bool:
    """Do the old points (found in y) carry the ids they had in the first clustering?"""
    index = {row.tobytes(): i for i, row in enumerate(y)}
    return all(labels_y[index[row.tobytes()]] == first.labels[i] for i, row in enumerate(x))


def test_more_clusters_keep_the_old_ids_and_add_fresh_ones() -> None:
    old = np.array([[0.0, 0.0], [10.0, 0.0]])
    new = np.array([[10.2, 0.1], [5.0, 5.0], [0.1, -0.1]])
    assert stable_ids(new, old, [7, 3]).tolist() == [3, 0, 7]
    assert stable_ids(new[[0, 2]], None).tolist() == [0, 1]


def test_too_few_images_for_k_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="k=5 clusters need at least 5 distinct points; found 3"):
        kmeans(np.eye(3), 5)
