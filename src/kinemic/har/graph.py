"""Skeleton graphs for graph-convolutional action classifiers, with ST-GCN's spatial partitioning.

A :class:`Graph` is a joint set whose edges are its bones (the parent of each joint, from
:mod:`kinemic.skeleton`) plus a *centre* joint. :meth:`Graph.adjacency` builds the (K, V, V)
stack of normalised adjacency matrices that ST-GCN (Yan et al., AAAI 2018) convolves with.

Orientation: ``A[k, i, j]`` is the weight with which joint ``j``'s features flow into joint
``i`` (row = the receiving joint), so a graph convolution is ``y[..., i] = Σ_k Σ_j
A[k, i, j] · W_k x[..., j]``.

Partitioning strategies (``strategy``):

- ``"uniform"`` (K = 1): the joint and its neighbours, one matrix.
- ``"distance"`` (K = 2): the joint itself; its neighbours.
- ``"spatial"`` (K = 3, the ST-GCN default): the joint itself (root); its *centripetal*
  neighbours, no farther (in hops) from the centre joint than the joint is; its *centrifugal*
  neighbours, farther from the centre. On a tree (both built-in graphs are trees) adjacent
  joints always differ by exactly one hop from the centre, so the "no farther" tie rule never
  applies there; it is stated for graphs with cycles.

Normalisation: every matrix is divided row-wise by the degree of the receiving joint in the
graph with self-loops (``A_k = P_k D⁻¹`` in the paper's notation), so the K matrices sum to the
row-normalised adjacency with self-loops: every row of ``A.sum(0)`` sums to 1 — each joint
averages itself and its neighbours, and the partitions only decide which weights apply.

Centres: Kinect-25 uses SpineShoulder (20), the centre ST-GCN uses for NTU RGB+D; SMPL-22 uses
its counterpart spine3 (9), the joint where the neck and both collars branch off the spine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from kinemic.skeleton import KINECT25, SMPL22, Skeleton

Strategy = Literal["uniform", "distance", "spatial"]
GraphName = Literal["smpl22", "kinect25"]


@dataclass(frozen=True)
class Graph:
    """A skeleton graph: ``num_joints`` joints, undirected bone ``edges`` and a ``centre``."""

    name: str
    num_joints: int
    edges: tuple[tuple[int, int], ...]  # (parent, child) bones
    centre: int

    def __post_init__(self) -> None:
        v = self.num_joints
        for a, b in self.edges:
            if not (0 <= a < v and 0 <= b < v) or a == b:
                raise ValueError(f"graph {self.name}: bad edge ({a}, {b}) for {v} joints")
        if not 0 <= self.centre < v:
            raise ValueError(f"graph {self.name}: centre {self.centre} outside 0..{v - 1}")
        if np.isinf(self.hops()).any():
            raise ValueError(f"graph {self.name}: not connected")

    @classmethod
    def from_skeleton(cls, skeleton: Skeleton, *, centre: int | str) -> Graph:
        """The graph of a :class:`~kinemic.skeleton.Skeleton`: one edge per bone."""
        c = skeleton.index(centre) if isinstance(centre, str) else int(centre)
        return cls(skeleton.name, skeleton.num_joints, tuple(skeleton.bones()), c)

    def neighbours(self) -> np.ndarray:
        """(V, V) bool: True where two joints share a bone (symmetric, no self-loops)."""
        a = np.zeros((self.num_joints, self.num_joints), dtype=bool)
        for p, c in self.edges:
            a[p, c] = a[c, p] = True
        return a

    def hops(self) -> np.ndarray:
        """(V, V) float: shortest path length in bones between joints (inf when unreachable)."""
        v = self.num_joints
        dist = np.full((v, v), np.inf)
        np.fill_diagonal(dist, 0.0)
        reach = np.eye(v, dtype=bool)
        step = self.neighbours() | np.eye(v, dtype=bool)
        for d in range(1, v):
            new = (reach.astype(int) @ step.astype(int)) > 0
            dist[new & ~reach] = d
            if (new == reach).all():
                break
            reach = new
        return dist

    def adjacency(self, strategy: Strategy = "spatial") -> np.ndarray:
        """(K, V, V) float32 normalised adjacency matrices of ``strategy`` (module docstring)."""
        v = self.num_joints
        nb = self.neighbours()
        with_self = nb | np.eye(v, dtype=bool)
        inv_degree = 1.0 / with_self.sum(1, keepdims=True)  # (V, 1): per receiving joint
        norm = with_self * inv_degree  # (V, V) rows sum to 1
        eye = np.eye(v, dtype=bool)
        if strategy == "uniform":
            parts = [with_self]
        elif strategy == "distance":
            parts = [eye, nb]
        elif strategy == "spatial":
            d = self.hops()[:, self.centre]  # hops of each joint from the centre
            farther = d[None, :] > d[:, None]  # [i, j]: neighbour j farther than receiver i
            parts = [eye, nb & ~farther, nb & farther]
        else:
            raise ValueError(f"unknown partitioning strategy {strategy!r}")
        return np.stack([norm * p for p in parts]).astype(np.float32)


#: The built-in graphs, by name (the name a model config stores).
GRAPHS: dict[str, Graph] = {
    "smpl22": Graph.from_skeleton(SMPL22, centre="spine3"),
    "kinect25": Graph.from_skeleton(KINECT25, centre="SpineShoulder"),
}


def get_graph(name: str) -> Graph:
    """A built-in graph by name (``"smpl22"`` or ``"kinect25"``)."""
    try:
        return GRAPHS[name]
    except KeyError:
        raise ValueError(f"unknown graph {name!r}: expected one of {', '.join(GRAPHS)}") from None
