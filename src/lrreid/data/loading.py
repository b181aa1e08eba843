"""Records -> tensors: torch ``Dataset`` wrappers and the P x K identity sampler.

* :class:`ImageDataset`: one record per item, ``{"image", "pid", "camid", "index"}``.
* :class:`TrackletDataset`: ``num_frames`` frames per tracklet, ``{"frames": [T, 3, H, W], ...}``.
* :class:`RandomIdentitySampler`: batches of P identities x K instances, split across processes.
* :func:`to_tensor`, :func:`resize_tensor`: PIL -> float tensor in [0, 1], antialiased resize.

Unreadable images follow a :class:`~lrreid.data.imageio.BadImagePolicy`: ``"raise"`` (default)
raises :class:`~lrreid.errors.ImageReadError`; ``"skip"`` replaces the item by another sample of
the same identity and counts it in ``dataset.policy.skipped`` (counts made inside DataLoader
worker processes stay in those processes; each worker logs its own skips).

Example::

    >>> ds = ImageDataset(build_dataset("synthetic").records, policy="skip")
    >>> item = ds[0]
    >>> item["image"].shape, item["pid"]
    (torch.Size([3, 128, 64]), 1)
"""
from __future__ import annotations

import os
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from lrreid.data.degradations import bicubic_resize
from lrreid.data.imageio import BadImagePolicy, image_to_tensor, read_image
from lrreid.data.records import ImageRecord, Record, TrackletRecord
from lrreid.errors import ConfigError, ImageReadError

Transform = Callable[[Image.Image], object]


to_tensor = image_to_tensor  # PIL -> [3, H, W] in [0, 1] (lrreid.data.imageio)


def resize_tensor(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bicubic resize of ``[3, H, W]`` or ``[B, 3, H, W]`` to ``size = (h, w)``, clamped to [0, 1].

    >>> resize_tensor(torch.rand(3, 32, 16), (128, 64)).shape
    torch.Size([3, 128, 64])
    """
    return bicubic_resize(x, size)


def _policy(policy: BadImagePolicy | str | None) -> BadImagePolicy:
    if policy is None:
        return BadImagePolicy("raise")
    if isinstance(policy, str):
        return BadImagePolicy(policy)
    return policy


def _pid_index(pids: Sequence[int]) -> dict[int, list[int]]:
    """Person id -> positions of its items, in order."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(pids):
        groups.setdefault(int(p), []).append(i)
    return groups


class _ReplacingDataset(torch.utils.data.Dataset):
    """Shared part: records, pids, and "skip = another sample of the same identity"."""

    def __init__(self, records: Sequence[Record], policy: BadImagePolicy | str | None):
        self.records = list(records)
        self.policy = _policy(policy)
        self._by_pid = _pid_index([r.pid for r in self.records])

    @property
    def pids(self) -> list[int]:
        """Person id of every item, in order (what :class:`RandomIdentitySampler` takes)."""
        return [int(r.pid) for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def _load(self, index: int):  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _item(self, index: int, payload) -> dict:  # pragma: no cover
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index %= len(self)
        try:
            return self._item(index, self._load(index))
        except ImageReadError as exc:
            self.policy.handle(exc)  # raises in "raise" mode
        # Skip mode: the same person's other samples, in a fixed order starting after this one.
        same = self._by_pid[int(self.records[index].pid)]
        start = same.index(index)
        for other in same[start + 1:] + same[:start]:
            try:
                return self._item(index, self._load(other))
            except ImageReadError as exc:
                self.policy.handle(exc)
        raise ImageReadError(f"person {self.records[index].pid}: no readable sample left to replace "
                             f"{self.records[index].path}")


class ImageDataset(_ReplacingDataset):
    """Image records as ``{"image": Tensor[3, H, W] in [0, 1] (or transform(pil)), "pid", "camid", "index"}``.

    ``transform`` takes the RGB PIL image; without it the image becomes a tensor at its own size.
    ``policy``: ``"raise"`` (default) or ``"skip"`` (or a :class:`BadImagePolicy`); a skipped image
    is replaced by another image of the same person (``index`` still names the requested item).

    >>> ds = ImageDataset(records, transform=lambda im: to_tensor(im.resize((64, 128))))
    >>> batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=8)))
    >>> batch["image"].shape
    torch.Size([8, 3, 128, 64])
    """

    def __init__(self, records: Sequence[ImageRecord], transform: Transform | None = None,
                 policy: BadImagePolicy | str | None = None):
        super().__init__(records, policy)
        self.transform = transform

    def _load(self, index: int):
        return read_image(self.records[index].path)

    def _item(self, index: int, img: Image.Image) -> dict:
        r = self.records[index]
        image = self.transform(img) if self.transform is not None else to_tensor(img)
        return {"image": image, "pid": int(r.pid), "camid": int(r.camid), "index": index}


SAMPLINGS = ("evenly", "random", "all")


def frame_indices(length: int, num_frames: int, sampling: str, rng: np.random.Generator | None = None) -> list[int]:
    """Which of a tracklet's ``length`` frames to use.

    * ``"evenly"``: ``num_frames`` indices spread over the whole tracklet (repeats when it is shorter);
    * ``"random"``: ``num_frames`` random frames in time order (without replacement when possible);
    * ``"all"``: every frame (``num_frames`` ignored; batches then need equal lengths or a collate_fn).

    >>> frame_indices(10, 4, "evenly")
    [0, 3, 6, 9]
    >>> frame_indices(1, 3, "evenly")
    [0, 0, 0]
    """
    if length < 1:
        raise ValueError("a tracklet needs at least one frame")
    if sampling == "all":
        return list(range(length))
    if sampling == "evenly":
        return [int(i) for i in np.floor(np.linspace(0, length - 1, num_frames) + 0.5)]
    if sampling == "random":
        rng = rng if rng is not None else np.random.default_rng()
        picks = rng.choice(length, size=num_frames, replace=length < num_frames)
        return sorted(int(i) for i in picks)
    raise ConfigError(f"frame sampling {sampling!r} is not one of {', '.join(SAMPLINGS)}")


class TrackletDataset(_ReplacingDataset):
    """Tracklet records as ``{"frames": Tensor[T, 3, H, W], "pid", "camid", "index"}``.

    ``sampling`` picks ``T = num_frames`` frames (see :func:`frame_indices`); a tracklet shorter than
    ``T`` repeats frames (a 1-frame tracklet becomes T copies).  ``transform`` is applied to every
    frame (PIL in, tensor out); without it, frames whose size differs from the first frame's are
    resized to it (antialiased bicubic) so they stack.  Unreadable frames are dropped in
    ``"skip"`` mode (counted); a tracklet with no readable frame is replaced by another tracklet of
    the same person.  ``"random"`` draws from ``default_rng([seed, epoch, index, torch.initial_seed()])``:
    reproducible, and new each epoch under the engine (which reseeds torch every epoch and every worker).
    Image records are accepted as 1-frame tracklets.
    """

    def __init__(self, records: Sequence[Record], num_frames: int = 8, sampling: str = "evenly",
                 transform: Transform | None = None, seed: int = 0, policy: BadImagePolicy | str | None = None):
        super().__init__(records, policy)
        if sampling not in SAMPLINGS:
            raise ConfigError(f"frame sampling {sampling!r} is not one of {', '.join(SAMPLINGS)}")
        if not isinstance(num_frames, int) or num_frames < 1:
            raise ConfigError(f"num_frames must be a positive integer, got {num_frames!r}")
        self.num_frames, self.sampling, self.transform, self.seed = num_frames, sampling, transform, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    @staticmethod
    def _frames_of(record: Record) -> tuple[str, ...]:
        return record.frames if isinstance(record, TrackletRecord) else (record.path,)

    def _load(self, index: int) -> list[Image.Image]:
        paths = self._frames_of(self.records[index])
        rng = np.random.default_rng([self.seed, self.epoch, index, torch.initial_seed() & 0xFFFFFFFFFFFFFFFF])
        chosen = frame_indices(len(paths), self.num_frames, self.sampling, rng)
        cache: dict[int, Image.Image | None] = {}
        for i in sorted(set(chosen)):
            try:
                cache[i] = read_image(paths[i])
            except ImageReadError as exc:
                self.policy.handle(exc)
                cache[i] = None
        frames = [cache[i] for i in chosen if cache[i] is not None]
        if not frames:
            raise ImageReadError(f"tracklet {os.path.dirname(paths[0]) or paths[0]}: no readable frame")
        while len(frames) < len(chosen):  # dropped frames: repeat the readable ones, in order
            frames.append(frames[len(frames) % max(1, len(frames))])
        return frames

    def _item(self, index: int, frames: list[Image.Image]) -> dict:
        r = self.records[index]
        if self.transform is not None:
            tensors = [self.transform(f) for f in frames]
        else:
            first = (frames[0].height, frames[0].width)
            tensors = [to_tensor(bicubic_resize(f, first) if (f.height, f.width) != first else f) for f in frames]
        return {"frames": torch.stack(tensors), "pid": int(r.pid), "camid": int(r.camid), "index": index}


class RandomIdentitySampler(torch.utils.data.Sampler):
    """P x K identity batches for metric losses, shared across ``world_size`` processes.

    ``batch_size`` is the GLOBAL batch: every global batch holds ``P = batch_size / num_instances``
    distinct identities with ``K = num_instances`` items each (an identity with fewer than K items is
    sampled with replacement).  Rank ``r`` yields its contiguous share ``batch_size / world_size``
    of every global batch, so the ranks together see exactly what one process would.  Every epoch
    (:meth:`set_epoch`) reshuffles from ``default_rng([seed, epoch])``, the same on every rank.

    Each identity contributes ``floor(max(n, K) / K)`` groups of K per epoch; every batch takes one
    group from each of the P identities with the most groups left (ties broken at random), which
    gives the largest possible number of batches (the same every epoch), and the batches are then
    shuffled.  With fewer than P identities there is no batch: ``len() == 0`` (the engine then says
    that the data gives no full batch).

    >>> sampler = RandomIdentitySampler(dataset.pids, batch_size=16, num_instances=4, seed=0)
    >>> loader = DataLoader(dataset, batch_size=16, sampler=sampler, drop_last=True)
    """

    def __init__(self, pids: Sequence[int], batch_size: int, num_instances: int, seed: int = 0,
                 rank: int = 0, world_size: int = 1):
        if num_instances < 1 or batch_size < 1 or batch_size % num_instances:
            raise ConfigError(f"batch_size={batch_size} must be a positive multiple of num_instances={num_instances}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ConfigError(f"rank={rank} is not in 0..world_size-1 (world_size={world_size})")
        if batch_size % world_size:
            raise ConfigError(f"batch_size={batch_size} must be divisible by the number of processes {world_size}")
        self.pids = [int(p) for p in pids]
        self.batch_size, self.num_instances = int(batch_size), int(num_instances)
        self.seed, self.rank, self.world_size = int(seed), int(rank), int(world_size)
        self.ids_per_batch = self.batch_size // self.num_instances
        self.by_pid = _pid_index(self.pids)
        self.epoch = 0
        self._cache: tuple[int, list[list[int]]] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def global_batches(self) -> list[list[int]]:
        """This epoch's global batches (item indices), identical on every rank."""
        if self._cache is not None and self._cache[0] == self.epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        k = self.num_instances
        groups: dict[int, list[list[int]]] = {}
        for pid in sorted(self.by_pid):
            idx = self.by_pid[pid]
            order = list(rng.permutation(idx))
            if len(order) < k:
                order += list(rng.choice(idx, size=k - len(order), replace=True))
            groups[pid] = [[int(i) for i in order[j:j + k]] for j in range(0, len(order) - k + 1, k)]
        # Fill each batch with the P identities that have the most groups left (random among equals):
        # this gives the largest possible number of batches, the same every epoch; then shuffle them.
        pids = sorted(groups)
        batches = []
        while True:
            left = np.array([len(groups[pid]) for pid in pids])
            if np.count_nonzero(left) < self.ids_per_batch:
                break
            order = np.lexsort((rng.random(len(left)), -left))[: self.ids_per_batch]
            batch = []
            for c in rng.permutation(order):
                batch += groups[pids[c]].pop()
            batches.append(batch)
        batches = [batches[i] for i in rng.permutation(len(batches))]
        self._cache = (self.epoch, batches)
        return batches

    def __iter__(self) -> Iterator[int]:
        share = self.batch_size // self.world_size
        lo, hi = self.rank * share, (self.rank + 1) * share
        for batch in self.global_batches():
            yield from batch[lo:hi]

    def __len__(self) -> int:
        """Items this rank yields this epoch (a multiple of ``batch_size / world_size``)."""
        return len(self.global_batches()) * (self.batch_size // self.world_size)

