"""ST-GCN (Yan et al., AAAI 2018): the action classifier of the evaluation protocol.

The architecture of ``../shared/SPEC.md`` §6: a BatchNorm over the input coordinates, ten
spatial-temporal blocks of 64, 64, 64, 64, 128, 128, 128, 256, 256, 256 channels (stride 2 in
time where the width changes), each a graph convolution over the K partitions of
:mod:`kinemic.har.graph` with a learnt edge-importance mask, then BatchNorm → ReLU → a temporal
convolution of kernel 9 → BatchNorm (→ dropout, off by default as in pyskl), plus a residual
path; global average pooling over (valid) frames and joints gives the 256-d *features*, and a
linear layer the logits. ``width`` scales every channel count (0.25 gives a 16→32→64 network
for CPU tests and quick runs); ``width=1`` is the published size (3.1 M parameters on SMPL-22
with 3 classes).

Input: joints ``(B, T, V, 3)`` as prepared by :func:`kinemic.har.data.prepare_clip` and an
optional mask ``(B, T)`` (True = valid frame). Masked frames are zeroed after the input
BatchNorm and left out of the pooling; the temporal convolutions see them as zero padding.
Training lives in :mod:`kinemic.har.train`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from kinemic.errors import DataError, KinemicError
from kinemic.har.graph import GRAPHS, get_graph

#: (channels, temporal stride) of the ten blocks at width 1.
BLOCKS: tuple[tuple[int, int], ...] = (
    (64, 1),
    (64, 1),
    (64, 1),
    (64, 1),
    (128, 2),
    (128, 1),
    (128, 1),
    (256, 2),
    (256, 1),
    (256, 1),
)
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


@dataclass
class STGCNConfig:
    """Architecture of an ST-GCN classifier."""

    num_classes: int
    graph: Literal["smpl22", "kinect25"] = "smpl22"
    in_channels: int = 3
    width: float = 1.0  # multiplies every channel count (at least 4 channels each)
    strategy: Literal["uniform", "distance", "spatial"] = "spatial"
    temporal_kernel: int = 9
    dropout: float = 0.0  # after each temporal convolution (pyskl: 0; ST-GCN's NTU configs: 0.5)
    edge_importance: bool = True

    def __post_init__(self) -> None:
        problems = []
        if self.num_classes < 2:
            problems.append(f"num_classes must be >= 2, found {self.num_classes}")
        if self.graph not in GRAPHS:
            problems.append(f"graph must be one of {', '.join(GRAPHS)}, found {self.graph!r}")
        if not 0 < self.width <= 8:
            problems.append(f"width must be in (0, 8], found {self.width}")
        if self.temporal_kernel < 1 or self.temporal_kernel % 2 == 0:
            problems.append(f"temporal_kernel must be odd and >= 1, found {self.temporal_kernel}")
        if not 0 <= self.dropout < 1:
            problems.append(f"dropout must be in [0, 1), found {self.dropout}")
        if problems:
            raise KinemicError("ST-GCN settings: " + "; ".join(problems))

    @property
    def num_joints(self) -> int:
        return get_graph(self.graph).num_joints

    def channels(self) -> list[int]:
        return [max(4, round(c * self.width)) for c, _ in BLOCKS]

    @property
    def feature_dim(self) -> int:
        return self.channels()[-1]


class STGCNBlock(nn.Module):
    """Graph convolution over K partitions, then a temporal convolution; residual, ReLU."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        *,
        num_parts: int,
        num_joints: int,
        stride: int,
        kernel: int,
        dropout: float,
        residual: bool,
        edge_importance: bool,
    ):
        super().__init__()
        self.num_parts = num_parts
        self.gcn = nn.Conv2d(c_in, c_out * num_parts, kernel_size=1)
        self.tcn = nn.Sequential(
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, (kernel, 1), stride=(stride, 1), padding=(kernel // 2, 0)),
            nn.BatchNorm2d(c_out),
            nn.Dropout(dropout, inplace=True),
        )
        if not residual:
            self.residual: nn.Module | None = None
        elif c_in == c_out and stride == 1:
            self.residual = nn.Identity()
        else:
            self.residual = nn.Sequential(
                nn.Conv2d(c_in, c_out, kernel_size=1, stride=(stride, 1)), nn.BatchNorm2d(c_out)
            )
        shape = (num_parts, num_joints, num_joints)
        self.importance = nn.Parameter(torch.ones(shape), requires_grad=edge_importance)

    def forward(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        # Σ_k W_k x A_kᵀ + b_k A_kᵀ, x (B, C_in, T, V), adjacency (K, V, V) [receiver, sender].
        # The graph product goes first, on the C_in input channels rather than the K·C_out of
        # the 1×1 convolution's output, as one matrix product for all K partitions; the
        # convolution's weight then mixes (partition, channel) pairs. The same function as
        # convolving first (to float rounding), with fewer and larger products. bench/har.py,
        # 2-core EPYC, width 0.125: training +28% clips/s at 100 frames, equal at 50;
        # evaluation +13-27%
        b, c, t, v = x.shape
        k = self.num_parts
        a = (adjacency * self.importance).to(x.dtype)
        xa = torch.matmul(x.reshape(b, c * t, v), a.permute(2, 0, 1).reshape(v, k * v))
        xa = xa.view(b, c, t, k, v).permute(0, 3, 1, 2, 4).reshape(b, k * c, t, v)
        weight = self.gcn.weight.view(k, -1, c).transpose(0, 1).reshape(-1, k * c, 1, 1)
        bias = torch.einsum("ko,ki->oi", self.gcn.bias.view(k, -1), a.sum(2))  # (C_out, V)
        h = nn.functional.conv2d(xa, weight.to(xa.dtype)) + bias.to(xa.dtype)[:, None, :]
        return self._temporal(h, x)

    def forward_convolution_first(self, x: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        """The same block the textbook way (1×1 convolution, then the graph product per
        partition): the reference the tests and bench/har.py compare :meth:`forward` with."""
        b, _, t, v = x.shape
        h = self.gcn(x).view(b, self.num_parts, -1, t, v)  # (B, K, C_out, T, V)
        a = (adjacency * self.importance).to(h.dtype)
        h = torch.matmul(h.flatten(2, 3), a.transpose(1, 2)).sum(1).view(b, -1, t, v)
        return self._temporal(h, x)

    def _temporal(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The rest of the block after the graph convolution h (B, C_out, T, V) of its input x:
        the temporal convolution, the residual path, ReLU."""
        out = self.tcn(h)  # (B, C_out, T', V)
        if self.residual is not None:
            out = out + self.residual(x)
        return torch.relu(out)


class STGCN(nn.Module):
    """ST-GCN classifier: ``forward(x, mask) -> logits``, ``features(x, mask) -> (B, D)``."""

    def __init__(self, config: STGCNConfig):
        super().__init__()
        self.config = config
        graph = get_graph(config.graph)
        adjacency = torch.from_numpy(graph.adjacency(config.strategy))  # (K, V, V)
        self.register_buffer("adjacency", adjacency, persistent=False)
        v, c = graph.num_joints, config.in_channels
        self.data_bn = nn.BatchNorm1d(v * c)
        blocks, c_in = [], c
        for i, (c_out, (_, stride)) in enumerate(zip(config.channels(), BLOCKS, strict=True)):
            blocks.append(
                STGCNBlock(
                    c_in,
                    c_out,
                    num_parts=len(adjacency),
                    num_joints=v,
                    stride=stride,
                    kernel=config.temporal_kernel,
                    dropout=config.dropout,
                    residual=i > 0,
                    edge_importance=config.edge_importance,
                )
            )
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Linear(c_in, config.num_classes)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    def features(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled penultimate features (B, D) of joints x (B, T, V, C), mask (B, T)."""
        b, t, v, c = x.shape
        cfg = self.config
        if (v, c) != (cfg.num_joints, cfg.in_channels):
            raise KinemicError(
                f"ST-GCN on the {cfg.graph} graph expects joints (B, T, {cfg.num_joints}, "
                f"{cfg.in_channels}), found {tuple(x.shape)}"
            )
        h = self.data_bn(x.permute(0, 2, 3, 1).reshape(b, v * c, t))  # (B, V*C, T)
        h = h.view(b, v, c, t).permute(0, 2, 3, 1)  # (B, C, T, V)
        if mask is not None:
            h = h * mask[:, None, :, None].to(h.dtype)
        for block in self.blocks:
            h = block(h, self.adjacency)
        h = h.mean(-1)  # (B, D, T')
        if mask is None:
            return h.mean(-1)
        m = mask
        for _, stride in BLOCKS:
            m = m[:, ::stride]  # the strided convolutions keep frames 0, s, 2s, ...
        m = m.to(h.dtype)[:, None, :]  # (B, 1, T')
        return (h * m).sum(-1) / m.sum(-1).clamp(min=1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, mask))  # (B, num_classes)


# ------------------------------------------------------------------------------ model folders


def save_stgcn(folder: str | Path, model: STGCN, *, extra: dict | None = None) -> Path:
    """Write ``config.json`` (architecture + ``extra``) and ``model.safetensors``; atomic."""
    from safetensors.torch import save

    from kinemic.files import write_bytes, write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    write_bytes(folder / WEIGHTS_FILE, save(state))
    info = {"format": "kinemic-stgcn", "version": 1, "model": asdict(model.config), **(extra or {})}
    write_text(folder / CONFIG_FILE, json.dumps(info, indent=2) + "\n")
    return folder


def load_stgcn(folder: str | Path) -> tuple[STGCN, dict]:
    """The model (eval mode, CPU) and the whole ``config.json`` of a folder from save_stgcn."""
    from kinemic.files import read_safetensors

    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise DataError(path, "missing file: not an ST-GCN folder (expected config.json)")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(path, f"not valid JSON ({e})") from None
    if not isinstance(info, dict) or info.get("format") != "kinemic-stgcn":
        found = info.get("format") if isinstance(info, dict) else info
        raise DataError(path, f"format is {found!r}, expected 'kinemic-stgcn'")
    try:
        model = STGCN(STGCNConfig(**info["model"]))
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(path, f"bad ST-GCN model settings ({e!r})") from None
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise DataError(weights, "missing file: the ST-GCN weights")
    model.load_state_dict(read_safetensors(weights))
    return model.eval(), info
