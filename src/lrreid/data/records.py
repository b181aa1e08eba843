"""What a dataset yields: one record per image or per tracklet.

Loaders parse a dataset's own on-disk layout into these records; protocols split and relabel
them; torch ``Dataset`` wrappers read the pixels.  Person ids are the dataset's own integers
(``0`` marks a distractor that stays in the gallery; junk ``-1`` never reaches a record).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

Split = Literal["train", "query", "gallery"]


@dataclass(frozen=True)
class ImageRecord:
    path: str
    pid: int
    camid: int
    split: Split | None = None  # the dataset's official split; None where the protocol decides
    view: str | None = None  # view group, e.g. "aerial" / "ground"
    scale: float = 1.0  # down-sampling factor applied to make this image (1.0 = original resolution)

    def with_(self, **changes) -> "ImageRecord":
        return replace(self, **changes)


@dataclass(frozen=True)
class TrackletRecord:
    frames: tuple[str, ...]
    pid: int
    camid: int
    split: Split | None = None
    view: str | None = None
    scale: float = 1.0

    @property
    def path(self) -> str:
        """First frame; lets code that shows or logs a record treat images and tracklets alike."""
        return self.frames[0]

    def with_(self, **changes) -> "TrackletRecord":
        return replace(self, **changes)


Record = ImageRecord | TrackletRecord


@dataclass
class ReidDataset:
    """All records of one dataset as the loader found them, plus what the loader counted."""

    name: str
    records: list[Record]
    is_video: bool = False
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count, for counted skips
    # The training persons of each published partition, where the distribution ships them (GRID's .mat).
    official_train_ids: list[tuple[int, ...]] = field(default_factory=list)

    def split(self, name: Split) -> list[Record]:
        return [r for r in self.records if r.split == name]

    @property
    def train(self) -> list[Record]:
        return self.split("train")

    @property
    def query(self) -> list[Record]:
        return self.split("query")

    @property
    def gallery(self) -> list[Record]:
        return self.split("gallery")

    @property
    def pids(self) -> list[int]:
        return sorted({r.pid for r in self.records})

    def __len__(self) -> int:
        return len(self.records)


def relabel(records: Sequence[Record]) -> tuple[list[Record], dict[int, int]]:
    """Map the person ids of training records onto 0..N-1 (classifier targets), keeping order."""
    mapping = {pid: i for i, pid in enumerate(sorted({r.pid for r in records}))}
    return [r.with_(pid=mapping[r.pid]) for r in records], mapping
