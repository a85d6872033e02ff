"""Stick-figure rendering of SMPL-22 clips: an animated GIF or MP4 with clips side by side, or a
PNG contact sheet (one row of sampled frames per clip).

The data is Y up (``../shared/SPEC.md`` §2); matplotlib's 3-D axes are Z up. We plot data
``(x, y, z)`` at ``(x, -z, y)``: a rotation by +90° about X, so handedness is kept and a left limb
stays on the body's left (a plain swap of y and z would mirror the figure).

Rendering uses ``matplotlib.figure.Figure`` with the Agg canvas directly, never pyplot, so the
user's backend and global state are untouched. Each frame only moves a few line artists on a
figure built once; GIF frames are assembled with Pillow on a single shared palette.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d import Axes3D
from mpl_toolkits.mplot3d.art3d import Line3DCollection, Poly3DCollection
from PIL import Image

from kinemic.errors import DataError, KinemicError
from kinemic.files import atomic_open, new_temp_file, read_npy
from kinemic.skeleton import SMPL22

ACCEPTED_SHAPES = "(T, 22, 3) joints, (T, 66) flattened joints or (T, 263) HumanML3D features"
FORMATS = (".gif", ".mp4", ".png")
#: Joints farther than this (metres) from the origin are refused: no plot can frame them.
MAX_COORDINATE = 1e5

#: Colours: the body's left limbs, right limbs, and the spine/head chain.
LEFT_COLOR = "#d62728"
RIGHT_COLOR = "#1f77b4"
SPINE_COLOR = "#404040"

Motion = np.ndarray | str | Path

_NO_FFMPEG = (
    "{out}: writing .mp4 needs the ffmpeg program, which is not on the PATH; install ffmpeg "
    "(e.g. `apt install ffmpeg` or `conda install -c conda-forge ffmpeg`) or write a .gif instead"
)


def load_motion(motion: Motion, *, label: str | None = None) -> np.ndarray:
    """Joints (T, 22, 3) float64 from a ``.npy`` path or an array.

    Accepts joints (T, 22, 3), flattened joints (T, 66) or HumanML3D features (T, 263), which are
    turned into joints with ``kinemic.features.features_to_joints`` (T rows give T frames).
    ``label`` names an in-memory array in error messages (e.g. ``"clip 2"``).
    Raises ``DataError`` for other shapes, empty clips, and frames holding NaN or inf.
    """
    path: Path | None = None
    if isinstance(motion, (str, Path)):
        path = Path(motion)
        if path.suffix != ".npy":
            raise DataError(path, f"expected a .npy file holding {ACCEPTED_SHAPES}")
        array = read_npy(path)
    else:
        array = np.asarray(motion)

    def fail(problem: str) -> DataError:
        if path is None and label:
            problem = f"{label}: {problem}"
        return DataError(path, problem)

    if not np.issubdtype(array.dtype, np.number):
        raise fail(f"expected a numeric array of {ACCEPTED_SHAPES}, found dtype {array.dtype}")
    shape = tuple(array.shape)
    if array.ndim == 3 and shape[1:] == (22, 3):
        kind = "joints"
    elif array.ndim == 2 and shape[1] == 66:
        kind = "joints"
        array = array.reshape(shape[0], 22, 3)
    elif array.ndim == 2 and shape[1] == 263:
        kind = "features"
    else:
        raise fail(f"expected {ACCEPTED_SHAPES}, found shape {shape}")
    if shape[0] == 0:
        raise fail(f"the clip is empty (shape {shape}); expected at least one frame")

    array = array.astype(np.float64, copy=False)
    bad = ~np.isfinite(array.reshape(shape[0], -1)).all(axis=1)
    if bad.any():
        frames = np.flatnonzero(bad)
        shown = ", ".join(str(f) for f in frames[:10]) + (", ..." if len(frames) > 10 else "")
        raise fail(
            f"{len(frames)} of {shape[0]} {kind} frames hold NaN or inf (frames {shown}); "
            "fix or trim the clip before rendering"
        )
    if kind == "features":
        from kinemic.features import features_to_joints  # lazy: torch-free import of render

        with np.errstate(all="ignore"):  # absurd features overflow: refused just below
            array = np.asarray(features_to_joints(array), dtype=np.float64)
    far = np.abs(array).max(initial=0.0, where=np.isfinite(array))
    if not np.isfinite(array).all() or far > MAX_COORDINATE:
        found = "NaN or inf" if not np.isfinite(array).all() else f"{far:.3g} m"
        raise fail(
            f"joints {'made from these features ' if kind == 'features' else ''}reach {found} "
            f"from the origin; a drawable motion (in metres) stays within {MAX_COORDINATE:g} m"
        )
    return array


def render_clips(
    clips: Sequence[Motion],
    out: str | Path,
    *,
    titles: Sequence[str] | None = None,
    fps: float = 20.0,
    elev: float = 15.0,
    azim: float = -60.0,
    max_frames: int | None = None,
    dpi: int = 72,
    panel_size: float = 4.0,
    floor: float | None = 0.0,
    sheet_frames: int = 6,
    follow: bool = False,
) -> Path:
    """Render clips side by side as ``.gif``, ``.mp4`` (needs ffmpeg) or a ``.png`` contact sheet.

    Each clip (a ``.npy`` path or an array, see ``load_motion``) gets its own 3-D panel with the
    same scale; the camera is fixed and framed on the clip's whole extent, so a walking figure
    stays in view. Clips of different lengths: shorter ones hold their last frame.

    - ``max_frames``: render only the first ``max_frames`` frames of each clip.
    - ``elev``/``azim``: camera angles in degrees; the default looks at a figure facing +Z from
      its front right.
    - ``panel_size``: width of a panel in inches (``panel_size * dpi`` pixels).
    - ``floor``: height of the floor plane; ``None`` puts it under each clip's lowest joint.
    - ``sheet_frames``: frames per clip (evenly spaced) on a ``.png`` contact sheet.
    - ``follow``: the camera follows each body (centred on its root every frame) and the floor
      grid slides under it, so a clip that travels far keeps its figure large; the panel then
      only needs to hold the body, not its whole path.

    The output is written to a temp file beside ``out`` and renamed, so an interrupted render
    never leaves a partial file. Returns ``out`` as a ``Path``; also ``kinemic.render_clips``.

    Examples:
        >>> import kinemic
        >>> motion = kinemic.sample("shipped", n=2, length=10, ddim=2)
        >>> kinemic.render_clips(list(motion.joints), "two.gif", titles=["take 1", "take 2"]).name
        'two.gif'
        >>> kinemic.render_clips([motion.features[0]], "sheet.png").name  # features work too
        'sheet.png'
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise KinemicError(f"{out}: unknown output format {out.suffix!r}; use one of {FORMATS}")
    if suffix == ".mp4" and _ffmpeg() is None:
        raise KinemicError(_NO_FFMPEG.format(out=out))
    if not clips:
        raise KinemicError("render_clips: no clips given")
    if titles is not None and len(titles) != len(clips):
        raise KinemicError(f"render_clips: {len(titles)} titles for {len(clips)} clips")
    if fps <= 0:
        raise KinemicError(f"render_clips: fps must be positive, got {fps}")
    if max_frames is not None and max_frames < 1:
        raise KinemicError(f"render_clips: max_frames must be at least 1, got {max_frames}")

    motions = [load_motion(c, label=f"clip {i + 1}") for i, c in enumerate(clips)]
    if max_frames is not None:
        motions = [m[:max_frames] for m in motions]
    if titles is None:
        titles = [
            Path(c).stem if isinstance(c, (str, Path)) else f"clip {i + 1}"
            for i, c in enumerate(clips)
        ]
    floors = [float(m[..., 1].min()) if floor is None else float(floor) for m in motions]
    size = _shared_size([_root_relative(m) if follow else m for m in motions], floors)
    camera = {"elev": elev, "azim": azim, "follow": follow}

    if suffix == ".png":
        return _write_sheet(
            motions, titles, floors, size, out, camera, dpi, panel_size, sheet_frames
        )

    height = panel_size * float(np.clip(_panel_aspect(size, elev, azim), 0.4, 1.5)) + 0.4
    fig = Figure(figsize=(panel_size * len(motions), height), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0, hspace=0)
    views = [
        _ClipView(fig.add_subplot(1, len(motions), i + 1, projection="3d"), m, f, size, **camera)
        for i, (m, f) in enumerate(zip(motions, floors, strict=True))
    ]
    for view, title in zip(views, titles, strict=True):
        view.ax.set_title(title, fontsize=11, y=0.95)
    _add_colour_key(fig)
    frames = _animate(fig, views, max(len(m) for m in motions))
    if suffix == ".gif":
        _write_gif(frames, out, fps)
    else:
        _write_mp4(frames, out, fps)
    return out


# --------------------------------------------------------------------------------------------
# One 3-D panel.


def _to_plot(points: np.ndarray) -> np.ndarray:
    """Data (..., 3) Y-up -> plot (..., 3) Z-up: (x, y, z) -> (x, -z, y), a proper rotation."""
    return np.stack([points[..., 0], -points[..., 2], points[..., 1]], axis=-1)


def _root_relative(joints: np.ndarray) -> np.ndarray:
    """Joints (T, 22, 3) with the root's horizontal position (data X, Z) of each frame
    subtracted: the body as a camera that follows it sees it."""
    out = joints.copy()
    out[..., [0, 2]] -= joints[:, :1, [0, 2]]
    return out


def _shared_size(motions: list[np.ndarray], floors: list[float]) -> np.ndarray:
    """Plot-space box size (3,) that holds every clip, so all panels share one scale."""
    size = np.zeros(3)
    for m, f in zip(motions, floors, strict=True):
        p = _to_plot(m)
        lo = p.reshape(-1, 3).min(axis=0)
        hi = p.reshape(-1, 3).max(axis=0)
        lo[2], hi[2] = min(lo[2], f), max(hi[2], f)
        size = np.maximum(size, hi - lo)
    size[:2] = np.maximum(size[:2], 1.0) + 0.4  # at least 1 m of floor, plus a margin
    size[2] = max(size[2], 1.0) + 0.1
    return size


def _panel_aspect(size: np.ndarray, elev: float, azim: float) -> float:
    """Height/width of the plot box as the orthographic camera sees it."""
    el, az = np.radians(elev), np.radians(azim)
    corners = np.array([[x, y, z] for x in (0, 1) for y in (0, 1) for z in (0, 1)]) * size
    u = -np.sin(az) * corners[:, 0] + np.cos(az) * corners[:, 1]
    v = (
        -np.sin(el) * np.cos(az) * corners[:, 0]
        - np.sin(el) * np.sin(az) * corners[:, 1]
        + np.cos(el) * corners[:, 2]
    )
    return float(np.ptp(v) / np.ptp(u))


def _grid_step(extent: float) -> float:
    """Floor grid spacing: 0.25 m, 0.5 m, then 1, 2, 5 × 10^k m, the finest giving <= 12 lines."""
    for step in (0.25, 0.5):
        if extent / step <= 12:
            return step
    scale = 10.0 ** max(0, math.floor(math.log10(extent / 12)))
    return next(k * scale for k in (1.0, 2.0, 5.0, 10.0) if extent / (k * scale) <= 12)


class _ClipView:
    """A 3-D axes showing one clip: floor, root trajectory, stick figure and a frame counter."""

    def __init__(
        self,
        ax: Axes3D,
        joints: np.ndarray,
        floor: float,
        size: np.ndarray,
        *,
        elev: float,
        azim: float,
        follow: bool = False,
    ) -> None:
        self.ax = ax
        self.points = _to_plot(joints)  # (T, 22, 3)
        self.floor = floor
        self.follow = follow
        # follow: each frame is drawn relative to its root's horizontal position
        self.offsets = self.points[:, 0, :2].copy() if follow else np.zeros((len(joints), 2))
        p = (self.points - np.pad(self.offsets, ((0, 0), (0, 1)))[:, None]).reshape(-1, 3)
        center = (p.min(axis=0) + p.max(axis=0)) / 2
        if follow:
            center[:2] = 0.0  # the root stays in the middle of the panel
        lo = center - size / 2
        lo[2] = min(floor, p[:, 2].min()) - 0.05
        hi = lo + size
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_zlim(lo[2], hi[2])
        ax.set_box_aspect(tuple(size), zoom=1.25)  # equal metres per pixel on every axis
        ax.view_init(elev=elev, azim=azim)
        ax.set_proj_type("ortho")
        ax.set_axis_off()
        ax.computed_zorder = False  # draw in zorder: floor, trajectory, body

        corners = [(lo[0], lo[1]), (hi[0], lo[1]), (hi[0], hi[1]), (lo[0], hi[1])]
        plane = Poly3DCollection([[(x, y, floor) for x, y in corners]], zorder=0)
        plane.set_facecolor((0.85, 0.85, 0.85, 0.6))
        plane.set_edgecolor((0.6, 0.6, 0.6, 1.0))
        ax.add_collection3d(plane)
        self.lo, self.hi = lo, hi
        self.step = _grid_step(float(size[:2].max()))
        self.grid = Line3DCollection(self._grid(0), colors="white", linewidths=0.8, zorder=1)
        ax.add_collection3d(self.grid)

        root = self.points[:, 0]
        if not follow:  # the whole path, drawn once (a moving camera draws it frame by frame)
            ax.plot(root[:, 0], root[:, 1], np.full(len(root), floor), color="0.6", lw=1, zorder=2)
        (self.path,) = ax.plot([], [], [], color="black", lw=1.5, zorder=2)
        self.bones = []
        for chain in SMPL22.chains:
            colour = _chain_colour(chain)
            (line,) = ax.plot([], [], [], color=colour, lw=3, marker="o", ms=2.5, zorder=3)
            self.bones.append((line, list(chain)))
        self.counter = ax.text2D(0.03, 0.03, "", transform=ax.transAxes, fontsize=9, color="0.2")

    def _grid(self, i: int) -> list:
        """Floor grid lines on the world's multiples of ``step``, as seen from frame ``i``."""
        lo, hi, step, floor = self.lo, self.hi, self.step, self.floor
        ox, oy = self.offsets[i]
        segments = []
        for x in np.arange(np.ceil((lo[0] + ox) / step) * step, hi[0] + ox, step) - ox:
            segments.append([(x, lo[1], floor), (x, hi[1], floor)])
        for y in np.arange(np.ceil((lo[1] + oy) / step) * step, hi[1] + oy, step) - oy:
            segments.append([(lo[0], y, floor), (hi[0], y, floor)])
        return segments

    def moving(self) -> list:
        """The artists that change from frame to frame."""
        grid = [self.grid] if self.follow else []  # first: under the body
        return [*grid, self.path, *(line for line, _ in self.bones), self.counter]

    def show(self, t: int) -> None:
        """Pose of frame ``t``; past the clip's end it holds the last frame."""
        n = len(self.points)
        i = min(t, n - 1)
        ox, oy = self.offsets[i]
        pose = self.points[i] - (ox, oy, 0.0)
        for line, chain in self.bones:
            line.set_data_3d(pose[chain, 0], pose[chain, 1], pose[chain, 2])
        root = self.points[: i + 1, 0, :2] - (ox, oy)
        if self.follow:  # the path so far, where it is still inside the panel
            self.grid.set_segments(self._grid(i))
            if self.ax.M is not None:  # blitting draws it without the axes' projection pass
                self.grid.do_3d_projection()
            inside = ((root >= self.lo[:2]) & (root <= self.hi[:2])).all(axis=1)
            root = np.where(inside[:, None], root, np.nan)
        self.path.set_data_3d(root[:, 0], root[:, 1], np.full(len(root), self.floor))
        self.counter.set_text(f"frame {i + 1}/{n}")


def _chain_colour(chain: Sequence[int]) -> str:
    names = [SMPL22.joint_names[j] for j in chain]
    if any(n.startswith("l_") for n in names):
        return LEFT_COLOR
    if any(n.startswith("r_") for n in names):
        return RIGHT_COLOR
    return SPINE_COLOR


def _add_colour_key(fig: Figure) -> None:
    fig.text(0.99, 0.015, "left", color=LEFT_COLOR, ha="right", va="bottom", fontsize=8)
    fig.text(0.99, 0.05, "right", color=RIGHT_COLOR, ha="right", va="bottom", fontsize=8)


# --------------------------------------------------------------------------------------------
# Writers.


def _rgb(fig: Figure) -> np.ndarray:
    """Draw the whole figure; (H, W, 3) uint8."""
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _animate(fig: Figure, views: list[_ClipView], num_frames: int) -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 frames. The static scene (floor, trails, titles) is drawn once; each frame
    restores it and redraws only the moving artists (blitting), about 3x faster than redrawing."""
    moving = [a for view in views for a in view.moving()]
    for artist in moving:
        artist.set_animated(True)  # left out of full draws
    canvas = fig.canvas
    canvas.draw()  # also sets each 3-D axes' projection matrix, which the moving lines reuse
    background = canvas.copy_from_bbox(fig.bbox)
    for t in range(num_frames):
        canvas.restore_region(background)
        for view in views:
            view.show(t)
            for artist in view.moving():
                view.ax.draw_artist(artist)
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _write_gif(frames: Iterator[np.ndarray], out: Path, fps: float) -> None:
    images: list[Image.Image] = []
    palette: Image.Image | None = None
    for frame in frames:
        rgb = Image.fromarray(frame)
        if palette is None:  # the colours hardly change between frames: one palette for all
            palette = rgb.quantize(colors=255, method=Image.Quantize.MEDIANCUT)
        images.append(rgb.quantize(palette=palette, dither=Image.Dither.NONE))
    with atomic_open(out, "wb") as f:
        images[0].save(
            f,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=round(1000.0 / fps),
            loop=0,
        )


def _ffmpeg() -> str | None:
    return shutil.which(matplotlib.rcParams["animation.ffmpeg_path"])


def _write_mp4(frames: Iterator[np.ndarray], out: Path, fps: float) -> None:
    # We pipe our own frames to ffmpeg rather than use matplotlib's FFMpegWriter: that writer
    # grabs frames through savefig, which redraws the whole figure and would undo the blitting.
    ffmpeg = _ffmpeg()
    if ffmpeg is None:
        raise KinemicError(_NO_FFMPEG.format(out=out))
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = new_temp_file(out, suffix=".mp4")  # the umask's mode, not mkstemp's 0o600
    os.close(fd)
    proc = None
    try:
        written = 0
        for frame in frames:
            if proc is None:
                h, w = frame.shape[:2]
                cmd = [
                    ffmpeg,
                    "-y",
                    "-loglevel",
                    "error",
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    "rgb24",
                    "-s",
                    f"{w}x{h}",
                    "-r",
                    f"{fps}",
                    "-i",
                    "-",
                    "-vf",
                    "pad=ceil(iw/2)*2:ceil(ih/2)*2",  # yuv420p needs even sizes
                    "-c:v",
                    "libx264",
                    "-pix_fmt",
                    "yuv420p",
                    "-f",
                    "mp4",
                    tmp,
                ]
                proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdin is not None
            try:
                proc.stdin.write(frame.tobytes())
                written += 1
            except BrokenPipeError:
                break  # ffmpeg quit early; its message is reported below
        assert proc is not None, "no frames to write"
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise KinemicError(
                f"{out}: ffmpeg failed (exit {proc.returncode}) after {written} frames: "
                f"{err.decode(errors='replace').strip()}"
            )
        os.replace(tmp, out)
    except BaseException:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_sheet(
    motions: list[np.ndarray],
    titles: Sequence[str],
    floors: list[float],
    size: np.ndarray,
    out: Path,
    camera: dict[str, float],
    dpi: int,
    panel_size: float,
    sheet_frames: int,
) -> Path:
    """One row per clip, ``sheet_frames`` evenly spaced frames per row."""
    if sheet_frames < 1:
        raise KinemicError(f"render_clips: sheet_frames must be at least 1, got {sheet_frames}")
    rows, cols = len(motions), sheet_frames
    width = panel_size * 0.75
    aspect = _panel_aspect(size, camera["elev"], camera["azim"])
    height = width * float(np.clip(aspect, 0.4, 1.5)) + 0.3
    fig = Figure(figsize=(width * cols, height * rows), dpi=dpi)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0, hspace=0)
    for r, (m, f, title) in enumerate(zip(motions, floors, titles, strict=True)):
        times = np.unique(np.linspace(0, len(m) - 1, cols).round().astype(int))
        for c, t in enumerate(times):
            ax = fig.add_subplot(rows, cols, r * cols + c + 1, projection="3d")
            _ClipView(ax, m, f, size, **camera).show(int(t))
            if c == 0:
                ax.set_title(title, fontsize=10, y=0.92, loc="left")
    _add_colour_key(fig)
    with atomic_open(out, "wb") as f:
        Image.fromarray(_rgb(fig)).save(f, format="PNG")
    return out
