"""S3-CLIP's tracklet data: HR / synthetic-LR / natural-LR triplets for training, frame loading for evaluation.

Training item (:class:`TrackletTriplets`), one per high-resolution tracklet::

    hr           [T, 3, H, W]     T frames of an HR ("ground") tracklet, resized to the encoder input
    lr_synthetic [T, 3, H/s, W/s] the same frames, bicubic-downsampled by the SR scale s (or degraded
                                  by a build_degradation spec, then resized to that grid)
    lr_natural   [T, 3, H/s, W/s] T frames of a genuine LR ("aerial") tracklet of the same person,
                                  resized (bicubic) to the SR input grid; where the person has none,
                                  a copy of lr_synthetic and has_natural = False
    pid, index

CAVIAR4REID and other image datasets become pseudo-tracklets with :func:`pseudo_tracklets`: each
person's images of one camera, in index order, form one tracklet; the near camera is the HR
("ground") view, the far camera the LR ("aerial") view.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from lrreid.data.degradations import bicubic_resize, build_degradation
from lrreid.data.imageio import read_image
from lrreid.data.loading import TrackletDataset, frame_indices, to_tensor
from lrreid.data.records import ImageRecord, Record, TrackletRecord
from lrreid.errors import ConfigError

log = logging.getLogger("lrreid.methods.s3clip")

SAMPLING_MODES = ("evenly", "random")  # for training; evaluation may also take "all"
CAVIAR_VIEWS = {"near": "ground", "far": "aerial"}


# ---------------------------------------------------------------------------- frames
def read_frames(paths: Sequence[str], size: tuple[int, int] | None = None) -> list[Image.Image]:
    """Read frames as RGB images; with ``size = (h, w)`` each is bicubic-resized to it.

    Frames of one tracklet may differ in size (detector boxes); with ``size=None`` they are all
    resized to the first frame's size so they stack.
    """
    images = [read_image(p) for p in paths]
    target = tuple(size) if size is not None else (images[0].height, images[0].width)
    return [bicubic_resize(im, target) for im in images]


def stack(images: Sequence[Image.Image]) -> torch.Tensor:
    return torch.stack([to_tensor(im) for im in images])


def lr_grid(input_size: tuple[int, int], scale: int) -> tuple[int, int]:
    """The SR input size whose x``scale`` output is the encoder input: (H/s, W/s)."""
    h, w = input_size
    if h % scale or w % scale:
        raise ConfigError(f"input size {tuple(input_size)} is not divisible by the SR scale {scale}")
    return h // scale, w // scale


def degrade_tracklet(images: Sequence[Image.Image], spec, seed: int) -> list[Image.Image]:
    """Apply a ``build_degradation`` spec to every frame with the same random draw (one camera, one tracklet)."""
    degrade = build_degradation(spec)
    return [degrade(im, np.random.default_rng(seed)) for im in images]


# ---------------------------------------------------------------------------- records
def usable_tracklets(records: Sequence[Record]) -> tuple[list[TrackletRecord], int]:
    """Tracklet records with at least one frame, and how many empty ones were dropped."""
    kept = [r for r in records if isinstance(r, TrackletRecord) and len(r.frames) > 0]
    return kept, sum(1 for r in records if isinstance(r, TrackletRecord) and len(r.frames) == 0)


def pseudo_tracklets(records: Sequence[Record], view_map: dict[str, str] | None = None,
                     max_frames: int | None = None) -> list[TrackletRecord]:
    """Group image records into tracklets: one per (split, pid, camid), frames in file-name order.

    ``view_map`` renames views (CAVIAR's ``near``/``far`` -> ``ground``/``aerial`` by default);
    tracklet records pass through unchanged.  ``max_frames`` cuts long groups into several tracklets.

    >>> [len(t.frames) for t in pseudo_tracklets(caviar.records)][:2]
    [10, 10]
    """
    view_map = CAVIAR_VIEWS if view_map is None else view_map
    groups: dict[tuple, list[ImageRecord]] = defaultdict(list)
    out: list[TrackletRecord] = []
    for r in records:
        if isinstance(r, TrackletRecord):
            out.append(r)
        else:
            groups[(r.split, r.pid, r.camid, r.view)].append(r)
    for (split, pid, camid, view), members in groups.items():
        members = sorted(members, key=lambda m: Path(m.path).name)
        step = max_frames or len(members)
        for start in range(0, len(members), step):
            chunk = members[start:start + step]
            scale = float(np.mean([m.scale for m in chunk]))
            out.append(TrackletRecord(frames=tuple(m.path for m in chunk), pid=pid, camid=camid, split=split,
                                      view=view_map.get(view, view) if view is not None else None, scale=scale))
    return out


def hr_frames_and_bicubic_copy(record: TrackletRecord, num_frames: int, input_size: tuple[int, int],
                               lr_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``num_frames`` evenly spaced frames of an HR tracklet at ``input_size`` and their bicubic copy at
    ``lr_size``, each ``[1, T, 3, h, w]`` (what the flicker numbers and the SR picture compare S on)."""
    idx = frame_indices(len(record.frames), num_frames, "evenly")
    hr = stack(read_frames([record.frames[i] for i in idx], input_size)).unsqueeze(0)
    lr = torch.nn.functional.interpolate(hr.flatten(0, 1), size=lr_size, mode="bicubic", antialias=True,
                                         align_corners=False).clamp(0, 1)
    return hr, lr.reshape(1, len(idx), 3, *lr_size)


def is_lr(record: Record, lr_views: Sequence[str]) -> bool:
    """A record of a low-resolution view (the ones super-resolved)."""
    return record.view in lr_views


def identities_with_anchors(records: Sequence[Record], lr_views: Sequence[str]) -> tuple[list[Record], int]:
    """The records of the identities that give training items (a non-empty HR tracklet, the triplet's
    anchor), renumbered 0..K-1 so the classifier has one class per such identity; and how many
    identities had none (LR-only: never a training item, so no class)."""
    anchored = sorted({r.pid for r in records if not is_lr(r, lr_views) and len(getattr(r, "frames", ())) > 0})
    mapping = {pid: i for i, pid in enumerate(anchored)}
    kept = [r.with_(pid=mapping[r.pid]) for r in records if r.pid in mapping]
    return kept, len({r.pid for r in records}) - len(anchored)


# ---------------------------------------------------------------------------- datasets
class TrackletTriplets(torch.utils.data.Dataset):
    """HR tracklet + its synthetic LR copy + a natural LR tracklet of the same person (training).

    ``records`` carry classifier targets as ``pid`` (0..C-1, see lrreid.data.records.relabel).
    Items are drawn from ``np.random.default_rng((seed, epoch, index))``; set :attr:`epoch` before
    each epoch so a resumed run draws the same frames.

    Example::

        ds = TrackletTriplets(train_records, input_size=(256, 128), scale=2, num_frames=8)
        item = ds[0]; item["hr"].shape, item["lr_synthetic"].shape   # [8,3,256,128], [8,3,128,64]
    """

    def __init__(self, records: Sequence[Record], input_size: tuple[int, int], scale: int = 2,
                 num_frames: int = 8, sampling: str = "random", lr_views: Sequence[str] = ("aerial",),
                 lr_degradation: str | list | dict = "bicubic", natural_lr: bool = True, seed: int = 0):
        if sampling == "all":
            raise ConfigError("training frame sampling 'all' would give tracklets of different lengths in one "
                              "batch; use 'evenly' or 'random'")
        if sampling not in SAMPLING_MODES:
            raise ConfigError(f"frame sampling {sampling!r} is not one of {', '.join(SAMPLING_MODES)}")
        tracklets, empty = usable_tracklets(records)
        if empty:
            log.warning("S3-CLIP training: skipped %d empty tracklet(s)", empty)
        self.input_size, self.scale = tuple(input_size), int(scale)
        self.lr_size = lr_grid(self.input_size, self.scale)
        self.num_frames, self.sampling = num_frames, sampling
        self.lr_degradation = None if lr_degradation in (None, "bicubic") else lr_degradation
        if self.lr_degradation is not None:
            build_degradation(self.lr_degradation)  # fail now, not in a worker
        self.seed, self.epoch = seed, 0
        self.anchors = [r for r in tracklets if not is_lr(r, lr_views)]
        self.natural: dict[int, list[TrackletRecord]] = defaultdict(list)
        if natural_lr:
            for r in tracklets:
                if is_lr(r, lr_views):
                    self.natural[r.pid].append(r)
        self.skipped = {"empty tracklet": empty}
        if not self.anchors:
            raise ConfigError(f"no high-resolution training tracklets (views other than {list(lr_views)}) "
                              "to make HR/LR triplets from")

    @property
    def pids(self) -> list[int]:
        return [r.pid for r in self.anchors]

    def __len__(self) -> int:
        return len(self.anchors)

    def __getitem__(self, index: int) -> dict:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        anchor = self.anchors[index]
        idx = frame_indices(len(anchor.frames), self.num_frames, self.sampling, rng)
        hr = read_frames([anchor.frames[i] for i in idx], self.input_size)
        if self.lr_degradation is None:
            synthetic = [bicubic_resize(im, self.lr_size) for im in hr]
        else:
            degraded = degrade_tracklet(hr, self.lr_degradation, int(rng.integers(2**31)))
            synthetic = [bicubic_resize(im, self.lr_size) for im in degraded]
        hr_t, syn_t = stack(hr), stack(synthetic)
        candidates = self.natural.get(anchor.pid, [])
        if candidates:
            natural = candidates[int(rng.integers(len(candidates)))]
            nidx = frame_indices(len(natural.frames), self.num_frames, self.sampling, rng)
            nat_t = stack(read_frames([natural.frames[i] for i in nidx], self.lr_size))
        else:
            nat_t = syn_t.clone()
        return {"hr": hr_t, "lr_synthetic": syn_t, "lr_natural": nat_t,
                "has_natural": torch.tensor(bool(candidates)), "pid": int(anchor.pid), "index": index}


class TrackletFrames(TrackletDataset):
    """lrreid.data.loading's TrackletDataset with a size per record and an optional degradation.

    ``size_of(record)`` gives the ``(h, w)`` each record's frames are resized to (None: the first
    frame's own size).  ``degradation`` (a build_degradation spec) is applied to the frames first,
    with one draw per tracklet from ``seed + index`` (robustness tests).  Frame sampling, unreadable
    frames and the bad-image policy are TrackletDataset's.
    """

    def __init__(self, records: Sequence[TrackletRecord], size_of, num_frames: int = 8,
                 sampling: str = "evenly", degradation=None, seed: int = 0, policy=None):
        super().__init__(records, num_frames=num_frames, sampling=sampling, seed=seed, policy=policy)
        self.size_of, self.degradation = size_of, degradation

    def _item(self, index: int, frames: list[Image.Image]) -> dict:
        record = self.records[index]
        first = (frames[0].height, frames[0].width)
        frames = [bicubic_resize(f, first) for f in frames]
        if self.degradation is not None:
            frames = degrade_tracklet(frames, self.degradation, self.seed + index)
        size = self.size_of(record) or (frames[0].height, frames[0].width)
        return {"frames": stack([bicubic_resize(f, size) for f in frames]), "pid": int(record.pid), "index": index}
