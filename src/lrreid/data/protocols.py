"""Evaluation protocols: which records train, which are probes (query), which form the gallery.

A protocol turns a :class:`~lrreid.data.records.ReidDataset` into a list of :class:`EvalSplit`
(one per random repeat).  The engine calls every protocol the same way::

    splits = protocol(dataset, num_splits=cfg.data.num_splits, seed=cfg.seed, **cfg.data.protocol_args)

* :func:`lr_single_shot_protocol`: the LR re-ID single-shot setting of MLR-* datasets (PRI 4.1):
  probes = all LR images of the test persons, gallery = one random HR image per test person.
* :func:`genuine_lr_protocol`: CAVIAR4REID: probes from the far camera, gallery from the near one.
* :func:`grid_protocol`: GRID: probe folder against gallery folder + the 775 distractors, 125/125 pairs.
* :func:`cross_view_protocol`: aerial/ground view groups (DetReIDX, synthetic_video).
* :func:`mlr_assign_factors`: the MLR construction rule (which images become LR, by which factor);
  ``lrreid prepare`` writes the down-sampled copy.
* :func:`load_prepared_splits`: the splits stored by ``lrreid prepare``.

Every random draw comes from ``numpy.random.default_rng([seed, ...])`` keyed by what is drawn (split
number, person id), so a seed always gives the same splits, independent of record order.  See
docs/protocols.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

from lrreid.data.records import Record, ReidDataset
from lrreid.errors import ProtocolError
from lrreid.utils.logging import get_logger

log = get_logger("data.protocols")

MLR_FACTORS = (2, 3, 4)

# Tags mixed into the seeds so that different draws never share a random stream.
_TAG_IDENTITIES, _TAG_GALLERY, _TAG_MLR, _TAG_SAME_VIEW = 0x1D, 0x6A, 0x3F, 0x5A


@dataclass
class EvalSplit:
    """One evaluation repeat: training records, probes (``query``) and ``gallery``."""

    name: str
    train: list[Record]
    query: list[Record]
    gallery: list[Record]
    notes: list[str] = field(default_factory=list)  # what the protocol did, in words (stored by ``lrreid prepare``)

    def __repr__(self) -> str:
        return (f"EvalSplit({self.name!r}, train={len(self.train)}, query={len(self.query)}, "
                f"gallery={len(self.gallery)})")


# --------------------------------------------------------------------------- helpers


def _records(dataset: ReidDataset | Sequence[Record]) -> tuple[str, list[Record]]:
    if isinstance(dataset, ReidDataset):
        return dataset.name, list(dataset.records)
    records = list(dataset)
    return "records", records


def _by_pid(records: Iterable[Record]) -> dict[int, list[Record]]:
    """Person id -> records sorted by path, so random draws do not depend on the loader's order."""
    groups: dict[int, list[Record]] = {}
    for r in records:
        groups.setdefault(int(r.pid), []).append(r)
    return {p: sorted(g, key=lambda r: (r.path, r.camid)) for p, g in groups.items()}


def _one_per_person(groups: dict[int, list[Record]], pids: Iterable[int], rng: np.random.Generator) -> list[Record]:
    """One randomly chosen record per person, in person order."""
    return [groups[p][int(rng.integers(len(groups[p])))] for p in sorted(pids)]


def _split_identities(pids: Sequence[int], num_test: int | None, num_train: int | None, seed: int,
                      index: int, what: str) -> tuple[list[int], list[int]]:
    """(train_ids, test_ids) drawn at random; by default the test half gets the odd person."""
    pids = sorted(pids)
    n = len(pids)
    if num_test is None and num_train is None:
        num_train = n // 2
        num_test = n - num_train
    elif num_test is None:
        num_test = n - num_train
    elif num_train is None:
        num_train = n - num_test
    if num_test < 1 or num_train < 0 or num_train + num_test > n:
        raise ProtocolError(
            f"{what}: cannot take {num_train} training + {num_test} test persons from {n} eligible persons")
    perm = np.random.default_rng([seed, index, _TAG_IDENTITIES]).permutation(n)
    chosen = [pids[i] for i in perm]
    return sorted(chosen[:num_train]), sorted(chosen[num_train:num_train + num_test])


def _log_ineligible(what: str, count: int, reason: str) -> None:
    if count:
        log.info("%s: %d person%s left out (%s)", what, count, "" if count == 1 else "s", reason)


def _check_num_splits(num_splits: int) -> None:
    if not isinstance(num_splits, int) or num_splits < 1:
        raise ProtocolError(f"num_splits must be a positive integer, got {num_splits!r}")


# --------------------------------------------------------------------------- MLR construction


def mlr_assign_factors(records: Sequence[Record], *, factors: Sequence[float] = MLR_FACTORS, seed: int = 0,
                       lr_camera: str | int | Mapping[int, int] = "random") -> list[float]:
    """The MLR down-sampling factor of every record (1.0 = stays HR), in record order.

    Rule (Jiao et al., AAAI 2018; PRI 4.1), for each person separately: one of the cameras the person
    was seen by is chosen at random and every image of that camera is down-sampled by a factor drawn
    per image from ``factors``; the other camera(s) stay HR.  For a two-camera dataset (VIPeR, each
    CUHK03 camera pair) this is "one camera of the pair"; for Market-1501 / DukeMTMC-reID one camera
    among the person's cameras.  A person seen by a single camera stays HR (and cannot be a test
    person of the single-shot protocol), and so do distractors (pid 0).  Draws use ``default_rng([seed, pid])`` over the person's
    images sorted by path, so the result does not depend on record order.

    ``lr_camera`` replaces the random choice: a camera id makes that camera LR for every person
    seen by it and by another camera (e.g. ``1`` = VIPeR's cam_b for everybody); a mapping
    ``pid -> camid`` names each person's LR camera (persons not in it, or whose named camera is
    their only one, stay HR).  Returned as factors, not records, because a record's ``scale``
    describes the file it points to: ``lrreid prepare`` writes the small files and the records.

    >>> factors = mlr_assign_factors(viper.records, seed=0)   # one of each person's 2 images is LR
    >>> sorted(set(factors))
    [1.0, 2.0, 3.0, 4.0]
    """
    choices = [float(f) for f in factors]
    if not choices or any(not f > 1 for f in choices):
        raise ProtocolError(f"MLR factors must be numbers > 1, got {list(factors)!r}")
    if isinstance(lr_camera, bool) or not (isinstance(lr_camera, (int, np.integer, Mapping)) or lr_camera == "random"):
        raise ProtocolError(f"lr_camera must be 'random', a camera id or a mapping pid -> camid, got {lr_camera!r}")
    out = [1.0] * len(records)
    by_pid: dict[int, list[int]] = {}
    for i, r in enumerate(records):
        by_pid.setdefault(int(r.pid), []).append(i)
    for pid, idx in by_pid.items():
        if pid <= 0:  # a distractor (pid 0) is nobody: its images stay as they are
            continue
        rng = np.random.default_rng([seed, pid & 0xFFFFFFFF, _TAG_MLR])
        cams = sorted({int(records[i].camid) for i in idx})
        if len(cams) < 2:
            continue
        if lr_camera == "random":
            lr_cam = cams[int(rng.integers(len(cams)))]
        else:
            lr_cam = lr_camera.get(pid) if isinstance(lr_camera, Mapping) else int(lr_camera)
            if lr_cam is None or int(lr_cam) not in cams:
                continue
        for i in sorted(idx, key=lambda i: records[i].path):
            if records[i].camid == lr_cam:
                out[i] = choices[int(rng.integers(len(choices)))]
    return out


# --------------------------------------------------------------------------- single-shot LR


def is_lr_record(record: Record) -> bool:
    """The default probe test: the file was made by down-sampling (``scale > 1``)."""
    return record.scale > 1


def lr_single_shot_protocol(dataset: ReidDataset | Sequence[Record], is_probe: Callable[[Record], bool] | None = None,
                            *, num_test_ids: int | None = None, num_splits: int = 10, seed: int = 0,
                            use_official_split: bool | None = None, distractors: bool = False) -> list[EvalSplit]:
    """The single-shot LR protocol of MLR-* datasets (PRI 4.1): LR probes against one HR image per person.

    ``is_probe(record)`` says which records are LR probes (default: ``scale > 1``, as written by
    ``lrreid prepare --protocol mlr``); every other record is HR.  Only persons with both LR and HR
    images are eligible test persons; the others are never training persons (counted and logged).

    * without an official split (VIPeR, CAVIAR, PRID2011): each split draws ``num_test_ids`` test
      persons (default: half of the eligible persons, rounded up: 316 of VIPeR's 632, 100 of PRID's
      200); train = all images of the other eligible persons;
    * with one (``use_official_split``; ``None`` = when every record has a ``split``): test persons
      = eligible persons of the official query/gallery part, train = the official train records.

    Per split: query = all LR images of the test persons, gallery = one randomly drawn HR image per
    test person (a new draw every split).  ``distractors=True`` adds to every gallery the HR images
    of the persons seen only by cameras that give no probe (MLR-PRID: the 549 cam_b-only persons)
    and the dataset's own distractors (pid 0).

    >>> splits = lr_single_shot_protocol(build_dataset("prepared", "out/mlr-viper"), num_splits=10)
    >>> len(splits[0].query), len(splits[0].gallery)
    (316, 316)
    """
    _check_num_splits(num_splits)
    name, records = _records(dataset)
    probe = is_probe or is_lr_record
    what = f"{name} single-shot LR protocol"
    if not any(probe(r) for r in records):
        raise ProtocolError(f"{what}: no LR probe record (none has scale > 1; prepare an MLR copy with "
                            f"`lrreid prepare` or pass is_probe)")
    has_split = all(r.split is not None for r in records)
    official = has_split if use_official_split is None else bool(use_official_split)
    if official and not has_split:
        raise ProtocolError(f"{what}: use_official_split=True but {name} has records without an official split")

    if official:
        train = [r for r in records if r.split == "train"]
        test_part = [r for r in records if r.split in ("query", "gallery")]
    else:
        train, test_part = [], records
    groups = _by_pid(r for r in test_part if r.pid > 0)
    lr = {p: [r for r in g if probe(r)] for p, g in groups.items()}
    hr = {p: [r for r in g if not probe(r)] for p, g in groups.items()}
    eligible = sorted(p for p in groups if lr[p] and hr[p])
    if not eligible:
        raise ProtocolError(f"{what}: no person has both LR and HR images")
    extra: list[Record] = []
    notes = []
    if distractors:
        probe_cams = {int(r.camid) for r in records if probe(r)}
        hr_only = sorted(p for p in groups if not lr[p] and not {int(r.camid) for r in hr[p]} & probe_cams)
        extra = [r for p in hr_only for r in hr[p]] + sorted((r for r in test_part if r.pid == 0 and not probe(r)),
                                                            key=lambda r: r.path)
        if not extra:
            raise ProtocolError(f"{what}: distractors=True but there is none: every camera gives LR probes "
                                f"(fix the LR camera, e.g. `lrreid prepare --lr-camera 0`) or no person is "
                                f"seen by the HR camera only")
        notes.append(f"gallery distractors: {len(extra)} images ({len(hr_only)} persons seen only by camera(s) "
                     f"{sorted({int(r.camid) for r in extra if r.pid > 0})} without probes"
                     f"{', plus the dataset distractors (pid 0)' if any(r.pid == 0 for r in extra) else ''})")
    else:
        hr_only = []
    left_out = len(groups) - len(eligible) - len(hr_only)
    _log_ineligible(what, left_out, "no LR image or no HR image" + (", not a distractor" if distractors else ""))
    if left_out:
        notes.append(f"{left_out} persons left out (seen by one camera only, neither trained nor tested"
                     f"{'' if distractors else ' nor used as distractors'})")

    splits = []
    for s in range(num_splits):
        if official:
            test_ids = eligible
            if num_test_ids is not None:
                test_ids = _split_identities(eligible, num_test_ids, 0, seed, s, what)[1]
            split_train = train
        else:
            n_test = num_test_ids if num_test_ids is not None else len(eligible) // 2 + len(eligible) % 2
            if n_test > len(eligible) or n_test < 1:
                raise ProtocolError(f"{what}: cannot take {n_test} test persons from {len(eligible)} eligible persons")
            perm = np.random.default_rng([seed, s, _TAG_IDENTITIES]).permutation(len(eligible))
            test_ids = sorted(eligible[i] for i in perm[:n_test])
            # The other persons seen by both sides train; one-camera persons never do.
            train_set = set(eligible) - set(test_ids)
            split_train = [r for r in records if r.pid in train_set]
        rng = np.random.default_rng([seed, s, _TAG_GALLERY])
        query = [r for p in test_ids for r in lr[p]]
        gallery = _one_per_person(hr, test_ids, rng) + extra
        split_notes = [f"{len({r.pid for r in split_train})} training persons, {len(test_ids)} test persons", *notes]
        splits.append(EvalSplit(f"split{s}", list(split_train), query, gallery, split_notes))
    return splits


# --------------------------------------------------------------------------- genuine LR (CAVIAR4REID)


def genuine_lr_protocol(dataset: ReidDataset | Sequence[Record], *, lr_camid: int = 1, hr_camid: int = 0,
                        num_train_ids: int | None = None, num_test_ids: int | None = None, num_splits: int = 10,
                        seed: int = 0, gallery_per_person: int | None = 1) -> list[EvalSplit]:
    """Genuine LR (CAVIAR4REID, PRI 4.1): probes from the far camera, gallery from the near one.

    Eligible persons are those seen by both cameras (CAVIAR4REID: 50 of 72; the 22 near-only people
    are left out, counted and logged).  Each split draws ``num_train_ids`` / ``num_test_ids`` of them
    (default: half / the rest, i.e. 25/25); train = all images of the training persons (both cameras),
    query = all ``lr_camid`` images of the test persons, gallery = ``gallery_per_person`` randomly
    drawn ``hr_camid`` images per test person (1 = PRI's single-shot gallery; ``None`` = all of them).

    >>> splits = genuine_lr_protocol(build_dataset("caviar", "../shared/data/CAVIAR4REID"))
    >>> len(splits), len(splits[0].query), len(splits[0].gallery)
    (10, 250, 25)
    """
    _check_num_splits(num_splits)
    name, records = _records(dataset)
    what = f"{name} genuine LR protocol"
    groups = _by_pid(r for r in records if r.pid > 0)
    cams_present = sorted({int(r.camid) for r in records})
    for cam, role in ((lr_camid, "lr_camid"), (hr_camid, "hr_camid")):
        if cam not in cams_present:
            raise ProtocolError(f"{what}: {role}={cam} has no image (cameras present: {cams_present})")
    if lr_camid == hr_camid:
        raise ProtocolError(f"{what}: lr_camid and hr_camid are both {lr_camid}")
    lr = {p: [r for r in g if r.camid == lr_camid] for p, g in groups.items()}
    hr = {p: [r for r in g if r.camid == hr_camid] for p, g in groups.items()}
    eligible = sorted(p for p in groups if lr[p] and hr[p])
    _log_ineligible(what, len(groups) - len(eligible), f"not seen by both camera {lr_camid} and camera {hr_camid}")
    if not eligible:
        raise ProtocolError(f"{what}: no person has images from both camera {lr_camid} and camera {hr_camid}")
    if gallery_per_person is not None and gallery_per_person < 1:
        raise ProtocolError(f"{what}: gallery_per_person must be >= 1 or None, got {gallery_per_person!r}")

    splits = []
    for s in range(num_splits):
        train_ids, test_ids = _split_identities(eligible, num_test_ids, num_train_ids, seed, s, what)
        train_set = set(train_ids)
        train = [r for r in records if r.pid in train_set]
        query = [r for p in test_ids for r in lr[p]]
        rng = np.random.default_rng([seed, s, _TAG_GALLERY])
        if gallery_per_person is None:
            gallery = [r for p in test_ids for r in hr[p]]
        else:
            gallery = []
            for p in test_ids:
                take = min(gallery_per_person, len(hr[p]))
                gallery += [hr[p][i] for i in sorted(rng.choice(len(hr[p]), size=take, replace=False))]
        splits.append(EvalSplit(f"split{s}", train, query, gallery))
    return splits


# --------------------------------------------------------------------------- GRID


def grid_protocol(dataset: ReidDataset | Sequence[Record], *, num_splits: int = 10, seed: int = 0,
                  num_test_ids: int | None = None, use_official_split: bool | None = None,
                  distractors: bool = True, probe_view: str = "probe", gallery_view: str = "gallery") -> list[EvalSplit]:
    """GRID (Loy et al. 2009): the 250 probe/gallery pairs split 125/125, every distractor in every gallery.

    A pair is a person with an image in the probe folder and one in the gallery folder (records'
    ``view``, set by the ``grid`` loader).  Splits: the official partitions of
    ``features_and_partitions.mat`` (the dataset's ``official_train_ids``; ``use_official_split=None``
    = when there are any), the first ``num_splits`` of them; otherwise ``num_splits`` seeded random
    splits of ``num_test_ids`` test persons (default half, 125), each split's notes saying which.
    Train = both images of the training persons; query = the probe-folder images of the test
    persons; gallery = their gallery-folder images plus all distractors (pid 0; ``distractors=False``
    leaves them out).  Persons without a pair are left out with a warning and a note.

    >>> splits = grid_protocol(build_dataset("grid", "data/underground_reid"))
    >>> len(splits), len(splits[0].query), len(splits[0].gallery)
    (10, 125, 900)
    """
    _check_num_splits(num_splits)
    name, records = _records(dataset)
    what = f"{name} GRID protocol"
    for view in (probe_view, gallery_view):
        if not any(r.view == view for r in records):
            raise ProtocolError(f"{what}: no record has view {view!r} (the folder it came from; load GRID with the "
                                f"'grid' loader)")
    groups = _by_pid(r for r in records if r.pid > 0)
    probes = {p: [r for r in g if r.view == probe_view] for p, g in groups.items()}
    gallery_of = {p: [r for r in g if r.view == gallery_view] for p, g in groups.items()}
    pairs = sorted(p for p in groups if probes[p] and gallery_of[p])
    if not pairs:
        raise ProtocolError(f"{what}: no person has both a {probe_view!r} and a {gallery_view!r} image")
    unpaired = len(groups) - len(pairs)
    notes = []
    if unpaired:
        log.warning("%s: %d person%s without a %s/%s pair left out", what, unpaired, "" if unpaired == 1 else "s",
                    probe_view, gallery_view)
        notes.append(f"{unpaired} persons left out (no {probe_view}/{gallery_view} pair)")
    pool = [r for r in records if r.pid == 0] if distractors else []
    official = list(getattr(dataset, "official_train_ids", []) or [])
    use_official = bool(official) if use_official_split is None else bool(use_official_split)
    if use_official and not official:
        raise ProtocolError(f"{what}: use_official_split=True but {name} has no official partition "
                            f"(features_and_partitions.mat)")
    if use_official and num_splits > len(official):
        raise ProtocolError(f"{what}: {num_splits} splits asked, the dataset has {len(official)} official partitions")

    splits = []
    for s in range(num_splits):
        if use_official:
            train_set = set(official[s]) & set(pairs)
            test_ids = [p for p in pairs if p not in train_set]
            if num_test_ids is not None:
                test_ids = _split_identities(test_ids, num_test_ids, 0, seed, s, what)[1]
            source = f"split source: official partition {s} of features_and_partitions.mat"
        else:
            train_ids, test_ids = _split_identities(pairs, num_test_ids, None, seed, s, what)
            train_set = set(train_ids)
            source = (f"split source: seeded random split {s} (seed {seed}; no official partition, "
                      f"features_and_partitions.mat not found)")
        train = [r for r in records if r.pid in train_set]
        query = [r for p in test_ids for r in probes[p]]
        gallery = [r for p in test_ids for r in gallery_of[p]] + pool
        split_notes = [source, f"{len(train_set)} training / {len(test_ids)} test pairs, "
                               f"{len(pool)} distractors in the gallery", *notes]
        splits.append(EvalSplit(f"split{s}", train, query, gallery, split_notes))
    return splits


# The protocol `genuine` means for a dataset whose genuine LR setting is not CAVIAR's two cameras.
_GENUINE_PROTOCOLS = {"grid": grid_protocol}


def genuine_protocol_for(dataset_name: str) -> Callable[..., list[EvalSplit]]:
    """The genuine-LR protocol of a dataset: :func:`grid_protocol` for GRID, else :func:`genuine_lr_protocol`."""
    return _GENUINE_PROTOCOLS.get(str(dataset_name).lower(), genuine_lr_protocol)


# --------------------------------------------------------------------------- cross-view


def cross_view_protocol(dataset: ReidDataset | Sequence[Record], query_view: str = "aerial",
                        gallery_view: str = "ground", *, num_splits: int = 1, seed: int = 0,
                        num_test_ids: int | None = None, use_official_split: bool | None = None
                        ) -> list[EvalSplit]:
    """Query view group -> gallery view group (aerial->ground, ground->aerial, aerial->aerial).

    Test persons: the official query/gallery part when the dataset has one (``use_official_split``;
    ``None`` = when every record has a ``split``; train = official train records), otherwise
    ``num_test_ids`` persons drawn per split (default half; train = all records of the others).
    Query = the test records of ``query_view``, gallery = the test records of ``gallery_view``.
    When both views are the same, per test person one randomly drawn record is the query and the
    others are gallery (a person with a single record of that view is gallery only).

    Query persons absent from the gallery view are KEPT: the evaluation counts and skips queries
    without a true match.  A view group with no record at all is a ProtocolError.

    >>> splits = cross_view_protocol(build_dataset("synthetic_video"), "aerial", "ground")
    >>> {r.view for r in splits[0].query}, {r.view for r in splits[0].gallery}
    ({'aerial'}, {'ground'})
    """
    _check_num_splits(num_splits)
    name, records = _records(dataset)
    what = f"{name} cross-view protocol {query_view}->{gallery_view}"
    views = sorted({str(r.view) for r in records if r.view is not None})
    for view in (query_view, gallery_view):
        if not any(r.view == view for r in records):
            raise ProtocolError(f"{what}: no record has view {view!r} (views present: {', '.join(views) or 'none'})")
    has_split = all(r.split is not None for r in records)
    official = has_split if use_official_split is None else bool(use_official_split)
    if official and not has_split:
        raise ProtocolError(f"{what}: use_official_split=True but {name} has records without an official split")

    splits = []
    for s in range(num_splits):
        if official:
            train = [r for r in records if r.split == "train"]
            test = [r for r in records if r.split in ("query", "gallery")]
            if num_test_ids is not None:
                ids = sorted({r.pid for r in test if r.pid > 0})
                keep = set(_split_identities(ids, num_test_ids, 0, seed, s, what)[1])
                test = [r for r in test if r.pid in keep or r.pid == 0]
        else:
            ids = sorted({r.pid for r in records if r.pid > 0})
            train_ids, test_ids = _split_identities(ids, num_test_ids, None, seed, s, what)
            train_set, test_set = set(train_ids), set(test_ids)
            train = [r for r in records if r.pid in train_set]
            test = [r for r in records if r.pid in test_set or r.pid == 0]
        if query_view != gallery_view:
            query = [r for r in test if r.view == query_view and r.pid > 0]
            gallery = [r for r in test if r.view == gallery_view]
        else:
            rng = np.random.default_rng([seed, s, _TAG_SAME_VIEW])
            groups = _by_pid(r for r in test if r.view == query_view)
            query, gallery = [], list(groups.pop(0, []))
            for p in sorted(groups):
                members = groups[p]
                pick = int(rng.integers(len(members))) if len(members) > 1 else None
                for i, r in enumerate(members):
                    (query if i == pick else gallery).append(r)
        if not query or not gallery:
            raise ProtocolError(f"{what}: split {s} has no {'query' if not query else 'gallery'} record "
                                f"(test persons have no {query_view if not query else gallery_view} record)")
        splits.append(EvalSplit(f"split{s}", train, query, gallery))
    return splits


# --------------------------------------------------------------------------- prepared copies


def load_prepared_splits(folder) -> list[EvalSplit]:
    """The evaluation splits stored by ``lrreid prepare`` in ``folder/manifest.json``.

    >>> splits = load_prepared_splits("out/mlr-viper")
    """
    from lrreid.data.datasets.prepared import load_prepared_splits as load

    return load(folder)
