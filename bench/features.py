"""Benchmark: joints → HumanML3D features throughput, vectorised vs a per-frame loop.

Prints a table and appends it to bench/results.md. Run: ``python bench/features.py``.

- ``vectorised, batch N``: ``joints_to_features`` on an (N, 100, 22, 3) batch;
- ``vectorised, per clip``: the same function called once per (100, 22, 3) clip;
- ``per-frame loop``: a straightforward implementation that walks frames and joints one at a
  time (written here only as the baseline; its output is checked against the library's);
- ``BVH → features``: the CMU trials of ../shared/data/cmu-bvh end to end (parse, FK, retarget,
  resample, features), when that folder is present.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from kinemic import features as F
from kinemic.geometry import qbetween, qinv, qmul, qrot, quat_to_cont6d
from kinemic.skeleton import FACE_JOINTS, SMPL22, SMPL22_RAW_OFFSETS
from results_log import append, heading

SHARED = Path(__file__).resolve().parents[2] / "shared"


def make_clips(n: int, frames: int, seed: int = 0) -> np.ndarray:
    """n random-walk bodies (n, frames, 22, 3) with plausible bone lengths."""
    rng = np.random.default_rng(seed)
    rest = np.zeros((22, 3))
    offsets = F.humanml3d_offsets()
    for j in range(1, 22):
        rest[j] = rest[SMPL22.parents[j]] + offsets[j]
    rest[:, 1] += 1.0
    drift = np.cumsum(rng.normal(scale=0.02, size=(n, frames, 1, 3)), axis=1) * [1, 0, 1]
    return rest + drift + rng.normal(scale=0.01, size=(n, frames, 22, 3))


def features_loop(joints: np.ndarray) -> np.ndarray:
    """The same features computed frame by frame and joint by joint (baseline only)."""
    pos = F.process_joints(joints)
    T = len(pos)
    r_hip, l_hip, r_sho, l_sho = FACE_JOINTS
    forward = np.zeros((T, 3))
    for t in range(T):
        across = (pos[t, l_hip] - pos[t, r_hip]) + (pos[t, r_sho] - pos[t, l_sho])
        across = across / np.linalg.norm(across)
        forward[t] = np.cross([0.0, 1.0, 0.0], across)
    forward = gaussian_filter1d(forward, F.FACING_SIGMA, axis=0, mode="nearest")
    r_rot = np.zeros((T, 4))
    for t in range(T):
        r_rot[t] = qbetween(forward[t] / np.linalg.norm(forward[t]), np.array([0.0, 0, 1]))
    r_rot[0] = (1.0, 0, 0, 0)
    rows = []
    for t in range(T - 1):
        quats = np.zeros((22, 4))
        for chain in SMPL22.chains:
            acc = r_rot[t]
            for parent, child in itertools.pairwise(chain):
                v = pos[t, child] - pos[t, parent]
                rot_uv = qbetween(SMPL22_RAW_OFFSETS[child], v / np.linalg.norm(v))
                quats[child] = qmul(qinv(acc), rot_uv)
                acc = qmul(acc, quats[child])
        root_vel = qrot(r_rot[t + 1], pos[t + 1, 0] - pos[t, 0])
        yaw = np.arcsin(qmul(r_rot[t + 1], qinv(r_rot[t]))[2])
        ric = [qrot(r_rot[t], pos[t, j] - pos[t, 0] * [1, 0, 1]) for j in range(1, 22)]
        vel = [qrot(r_rot[t], pos[t + 1, j] - pos[t, j]) for j in range(22)]
        contact = [
            float(((pos[t + 1, j] - pos[t, j]) ** 2).sum() < F.FEET_THRESHOLD)
            for j in (7, 10, 8, 11)
        ]
        rot6d = [quat_to_cont6d(quats[j]) for j in range(1, 22)]
        rows.append(
            np.concatenate(
                [
                    [yaw],
                    root_vel[[0, 2]],
                    [pos[t, 0, 1]],
                    np.ravel(ric),
                    np.ravel(rot6d),
                    np.ravel(vel),
                    contact,
                ]
            )
        )
    return np.asarray(rows, dtype=np.float32)


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=256, help="clips in the batch (256)")
    parser.add_argument("--frames", type=int, default=100, help="frames per clip (100)")
    parser.add_argument("--loop-clips", type=int, default=8, help="clips for the slow loop (8)")
    args = parser.parse_args()

    clips = make_clips(args.clips, args.frames)
    ref = features_loop(clips[0])
    assert np.abs(ref - F.joints_to_features(clips[0])).max() < 1e-5, "loop baseline disagrees"

    rows = []
    t = timed(lambda: F.joints_to_features(clips))
    batch_rate = args.clips / t
    rows.append((f"vectorised, batch {args.clips}", batch_rate))
    t = timed(lambda: [F.joints_to_features(c) for c in clips[:64]])
    rows.append(("vectorised, per clip", 64 / t))
    t = timed(lambda: [features_loop(c) for c in clips[: args.loop_clips]], repeat=1)
    loop_rate = args.loop_clips / t
    rows.append(("per-frame loop", loop_rate))

    bvh_row = None
    cmu = SHARED / "data" / "cmu-bvh"
    if cmu.exists():
        from kinemic.io.bvh import bvh_to_smpl

        files = sorted(cmu.rglob("*.bvh"))
        t0 = time.perf_counter()
        seconds = 0.0
        for f in files:
            joints = bvh_to_smpl(f)
            F.joints_to_features(joints)
            seconds += len(joints) / 20.0
        dt = time.perf_counter() - t0
        bvh_row = (len(files), dt, seconds)

    lines = [
        heading("features"),
        "",
        f"joints → features, {args.frames}-frame clips",
        "",
        "| method | clips/s |",
        "|---|---:|",
        *[f"| {name} | {rate:,.1f} |" for name, rate in rows],
        "",
        f"vectorised batch / per-frame loop: **{batch_rate / loop_rate:,.0f}×**",
    ]
    if bvh_row:
        n, dt, sec = bvh_row
        lines += [
            "",
            f"BVH → features: {n} CMU trials ({sec / 60:.1f} min of motion at 20 fps) "
            f"in {dt:.2f} s "
            f"= {n / dt:.1f} trials/s, {sec / dt:,.0f}× real time",
        ]
    text = "\n".join(lines) + "\n"
    append(text)


if __name__ == "__main__":
    main()
