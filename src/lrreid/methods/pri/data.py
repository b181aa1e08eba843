"""PRI's training triplets {x_h, x_l, x_sl} and the image helpers of its evaluation.

Which training images are low-resolution (x_l) and which are high-resolution (x_h):

* ``lr_cameras`` given: images of those cameras are LR, all others HR;
* else, if any record has ``scale > 1`` (an MLR dataset, or the synthetic far camera): those are LR;
* else (a genuine LR dataset such as CAVIAR, whose files carry no scale): the camera whose images
  have the smallest median area is the LR camera.

One item per training LR image: ``x_l`` resized to a fixed LR canvas (default the median LR
training size) so that images of different sizes batch together -- or, with ``lr_size=None``
("native"), kept at its own size and padded into a canvas with its true size in ``lr_hw``, so that
an MLR image down-sampled by 4 stays 4x smaller than one down-sampled by 2 -- and ``x_h`` a random HR image of
the same person resized to the HR canvas (default the median HR training size); both flipped
together.  ``x_sl`` is made from ``x_h`` in the training step, because its scale is drawn per
batch.  Identities with images from only one side (only LR or only HR) cannot form a triplet: they
are skipped, counted and logged, and :func:`triplet_identities` renumbers the others 0..K-1, so
that the classifier has a class for each identity that gets training samples and no other.

Memory: the native LR canvas is bounded by the HR canvas (never larger, whatever the largest "LR"
image): G super-resolves the whole canvas by up to x4, so one odd large image used to set the size
of every batch (GRID's genuine protocol: a 347x169 canvas, 15 GB RSS).  LR images are smaller than
HR ones by definition; the rare larger one is shrunk into the canvas, keeping its aspect ratio.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from lrreid.data.degradations import bicubic_resize
from lrreid.data.imageio import image_size, image_to_tensor, read_image
from lrreid.data.records import Record
from lrreid.errors import ProtocolError
from lrreid.utils.logging import get_logger

log = get_logger("methods.pri")


pil_to_tensor = image_to_tensor  # PIL RGB image -> float tensor (3, H, W) in [0, 1] (lrreid.data.imageio)


def load_image(path: str, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Read an image as a (3, H, W) float tensor, resized (antialiased bicubic) to ``size`` if given."""
    img = read_image(path)
    if size is not None:
        img = bicubic_resize(img, size)
    return pil_to_tensor(img)


def record_hw(record: Record) -> tuple[int, int]:
    """(height, width) of a record's image from its header."""
    w, h = image_size(record.path)
    return h, w


def _sample(records: Sequence[Record], limit: int, seed: int = 0) -> list[Record]:
    if len(records) <= limit:
        return list(records)
    idx = np.random.default_rng(seed).choice(len(records), size=limit, replace=False)
    return [records[i] for i in sorted(idx)]


def median_size(records: Sequence[Record], limit: int = 2000) -> tuple[int, int]:
    """Median (h, w) of the records' images (read from at most ``limit`` headers)."""
    sizes = [record_hw(r) for r in _sample(records, limit)]
    return int(round(statistics.median(h for h, _ in sizes))), int(round(statistics.median(w for _, w in sizes)))


def mean_area(records: Sequence[Record], limit: int = 2000) -> float:
    """Mean h*w of the records' images: R of the size-based predictor (PRI.md Table 2)."""
    sizes = [record_hw(r) for r in _sample(records, limit)]
    return float(np.mean([h * w for h, w in sizes]))


@dataclass
class ResolutionSplit:
    """Training records divided into LR (x_l candidates) and HR (x_h candidates) by identity."""

    lr: list[Record]
    hr_by_pid: dict[int, list[Record]]
    lr_cameras: list[int] | None  # the cameras found or given as LR (None: decided by scale)
    skipped: dict[str, int] = field(default_factory=dict)

    @property
    def hr(self) -> list[Record]:
        return [r for recs in self.hr_by_pid.values() for r in recs]


def split_by_resolution(
    records: Sequence[Record], lr_cameras: Sequence[int] | None = None, size_sample: int = 2000
) -> ResolutionSplit:
    """Divide training records into LR and HR images (rules in the module docstring).

    Example::

        res = split_by_resolution(train_records)          # auto
        len(res.lr), sorted(res.hr_by_pid)[:3]
    """
    records = list(records)
    if not records:
        raise ProtocolError("PRI: no training records")
    if lr_cameras is not None:
        is_lr = [r.camid in set(lr_cameras) for r in records]
        found = list(lr_cameras)
    elif any(r.scale > 1 for r in records):
        is_lr = [r.scale > 1 for r in records]
        found = None
    else:
        by_cam: dict[int, list[Record]] = defaultdict(list)
        for r in records:
            by_cam[r.camid].append(r)
        if len(by_cam) < 2:
            raise ProtocolError(
                f"PRI: all training images come from camera {records[0].camid} and none is down-sampled "
                "(scale > 1): cannot tell LR from HR images (set triplets.lr_cameras)"
            )
        areas = {cam: float(np.prod(median_size(recs, max(50, size_sample // len(by_cam))))) for cam, recs in by_cam.items()}
        lr_cam = min(areas, key=areas.get)
        log.info("PRI: camera %s has the smallest images (median area %.0f px) and gives the LR images x_l", lr_cam, areas[lr_cam])
        is_lr = [r.camid == lr_cam for r in records]
        found = [lr_cam]
    lr_by_pid: dict[int, list[Record]] = defaultdict(list)
    hr_by_pid: dict[int, list[Record]] = defaultdict(list)
    for r, low in zip(records, is_lr):
        (lr_by_pid if low else hr_by_pid)[r.pid].append(r)
    only_lr = sorted(set(lr_by_pid) - set(hr_by_pid))
    only_hr = sorted(set(hr_by_pid) - set(lr_by_pid))
    skipped = {}
    if only_lr:
        skipped["identities with LR images only"] = len(only_lr)
    if only_hr:
        skipped["identities with HR images only"] = len(only_hr)
    for reason, count in skipped.items():
        log.warning("PRI: skipping %d training %s (a triplet needs both)", count, reason)
    both = sorted(set(lr_by_pid) & set(hr_by_pid))
    if not both:
        raise ProtocolError("PRI: no training identity has both LR and HR images, so no triplet {x_h, x_l, x_sl} can be formed")
    lr = [r for pid in both for r in lr_by_pid[pid]]
    return ResolutionSplit(lr=lr, hr_by_pid={pid: hr_by_pid[pid] for pid in both}, lr_cameras=found, skipped=skipped)


def hold_out_persons(res: ResolutionSplit, share: float, seed: int = 0) -> tuple[ResolutionSplit, ResolutionSplit | None]:
    """``(kept, held_out)``: ``round(share * K)`` of the K triplet identities (at least 1 when share > 0,
    and at least 2 kept), drawn with ``seed``, are taken out of training; ``held_out`` is None at share 0."""
    pids = sorted(res.hr_by_pid)
    count = min(max(1, round(share * len(pids))), len(pids) - 2) if share > 0 else 0
    if count <= 0:
        return res, None
    held = set(np.random.default_rng(seed).permutation(pids)[:count].tolist())

    def part(keep):
        return ResolutionSplit(lr=[r for r in res.lr if (r.pid in held) != keep],
                               hr_by_pid={p: v for p, v in res.hr_by_pid.items() if (p in held) != keep},
                               lr_cameras=res.lr_cameras, skipped=res.skipped)

    return part(True), part(False)


def triplet_identities(res: ResolutionSplit) -> ResolutionSplit:
    """The same split with person ids renumbered 0..K-1 over the identities that form triplets (the classes)."""
    mapping = {pid: i for i, pid in enumerate(sorted(res.hr_by_pid))}
    return ResolutionSplit(
        lr=[r.with_(pid=mapping[r.pid]) for r in res.lr],
        hr_by_pid={mapping[pid]: [r.with_(pid=mapping[pid]) for r in recs] for pid, recs in res.hr_by_pid.items()},
        lr_cameras=res.lr_cameras, skipped=res.skipped)


class TripletDataset(torch.utils.data.Dataset):
    """One item per training LR image: ``{"x_l", "x_h", "pid", "lr_index", "lr_hw"}``.

    ``lr_size=None`` keeps each x_l at its own size, zero-padded at the bottom and right into
    ``lr_canvas`` (default: the largest LR size, capped at ``hr_size``; a larger image is shrunk to
    fit, keeping its aspect ratio); ``lr_hw`` is the (h, w) of the image inside the canvas.

    ``x_h`` is a random HR image of the same person (a new draw each time the item is read, from
    torch's global generator, which the engine seeds per epoch); ``lr_index`` indexes the soft-label
    table.  Decoded, resized images are cached in memory as uint8 when ``cache`` is set.

    Example::

        ds = TripletDataset(res.lr, res.hr_by_pid, lr_size=(57, 26), hr_size=(92, 37))
        item = ds[0]; item["x_l"].shape   # torch.Size([3, 57, 26])
    """

    def __init__(
        self,
        lr_records: Sequence[Record],
        hr_by_pid: dict[int, Sequence[Record]],
        lr_size: tuple[int, int] | None,
        hr_size: tuple[int, int],
        flip: bool = True,
        cache: bool = True,
        lr_canvas: tuple[int, int] | None = None,
    ):
        self.lr_records = list(lr_records)
        self.hr_by_pid = {int(k): list(v) for k, v in hr_by_pid.items()}
        missing = {r.pid for r in self.lr_records} - set(self.hr_by_pid)
        if missing:
            raise ProtocolError(f"PRI: identities {sorted(missing)[:5]} have LR images but no HR image")
        self.lr_size = None if lr_size is None else tuple(lr_size)
        self.hr_size = tuple(hr_size)
        self.lr_canvas = self.lr_size
        if self.lr_size is None:
            sizes = [record_hw(r) for r in self.lr_records]
            if lr_canvas:
                self.lr_canvas = tuple(lr_canvas)
            else:  # bounded by the HR canvas: one odd large image must not set every batch's size
                self.lr_canvas = (min(max(h for h, _ in sizes), self.hr_size[0]), min(max(w for _, w in sizes), self.hr_size[1]))
        self.flip = flip
        self.pids = [int(r.pid) for r in self.lr_records]  # read by the engine's identity sampler
        self._cache: dict[tuple[str, tuple[int, int]], torch.Tensor] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.lr_records)

    def _image(self, path: str, size: tuple[int, int] | None) -> torch.Tensor:
        if self._cache is None:
            return self._load(path, size)
        key = (path, size)
        if key not in self._cache:
            self._cache[key] = (self._load(path, size) * 255.0).round_().to(torch.uint8)
        return self._cache[key].float().div_(255.0)

    def _load(self, path: str, size: tuple[int, int] | None) -> torch.Tensor:
        if size is not None:
            return load_image(path, size)
        img = load_image(path)
        h, w = img.shape[-2:]
        ch, cw = self.lr_canvas
        if h > ch or w > cw:  # an image larger than the (capped or user-given) canvas
            f = min(ch / h, cw / w)
            img = load_image(path, (max(1, int(h * f)), max(1, int(w * f))))
        return img

    def __getitem__(self, index: int) -> dict:
        record = self.lr_records[index]
        candidates = self.hr_by_pid[int(record.pid)]
        hr_record = candidates[int(torch.randint(len(candidates), ()))]
        x_l = self._image(record.path, self.lr_size)
        x_h = self._image(hr_record.path, self.hr_size)
        if self.flip and bool(torch.rand(()) < 0.5):
            x_l, x_h = x_l.flip(-1), x_h.flip(-1)
        lr_hw = torch.tensor(x_l.shape[-2:])
        if self.lr_size is None:  # pad after the flip, so the image stays at the canvas's top left
            canvas = x_l.new_zeros(3, *self.lr_canvas)
            canvas[:, :x_l.shape[-2], :x_l.shape[-1]] = x_l
            x_l = canvas
        return {"x_l": x_l, "x_h": x_h, "pid": int(record.pid), "lr_index": index, "lr_hw": lr_hw}
