"""Evaluation protocols: who trains, who probes, what the gallery holds; determinism; one-line errors."""
from __future__ import annotations

import logging
from collections import Counter

import pytest

from lrreid.data.protocols import (
    EvalSplit, cross_view_protocol, genuine_lr_protocol, grid_protocol, lr_single_shot_protocol, mlr_assign_factors,
)
from lrreid.data.records import ImageRecord, ReidDataset
from lrreid.errors import ProtocolError


def caviar_like(num_both=50, num_near_only=22, per_cam=10) -> ReidDataset:
    """CAVIAR4REID's shape: everybody in the near camera (0), ``num_both`` also in the far one (1)."""
    records = []
    for pid in range(1, num_both + num_near_only + 1):
        cams = (0, 1) if pid <= num_both else (0,)
        for cam in cams:
            for i in range(per_cam):
                records.append(ImageRecord(f"c/{pid:04d}{cam * 10 + i + 1:03d}.jpg", pid, cam,
                                           view=("near", "far")[cam]))
    return ReidDataset("caviar_like", records)


def two_camera(num_ids=40, per_cam=1, split=None) -> list[ImageRecord]:
    return [ImageRecord(f"v/{cam}/{pid:03d}_{i}.bmp", pid, cam, split=split)
            for pid in range(1, num_ids + 1) for cam in (0, 1) for i in range(per_cam)]


def mlr(records, seed=0) -> list[ImageRecord]:
    return [r.with_(scale=f) for r, f in zip(records, mlr_assign_factors(records, seed=seed))]


def pids(records) -> set[int]:
    return {r.pid for r in records}


# ------------------------------------------------------------------ MLR construction

def test_mlr_one_camera_per_person_is_lr_with_factors_from_the_set():
    records = two_camera(100, per_cam=3)
    factors = mlr_assign_factors(records, seed=0)
    lr_cams = {}
    for r, f in zip(records, factors):
        if f > 1:
            lr_cams.setdefault(r.pid, set()).add(r.camid)
    assert set(lr_cams) == set(range(1, 101))  # every person has an LR camera ...
    assert all(len(c) == 1 for c in lr_cams.values())  # ... exactly one
    for r, f in zip(records, factors):  # and all images of that camera are LR
        assert (f > 1) == (r.camid in lr_cams[r.pid])
    assert {f for f in factors if f > 1} == {2.0, 3.0, 4.0}
    assert Counter(min(c) for c in lr_cams.values()).keys() == {0, 1}  # both cameras get chosen


def test_mlr_is_deterministic_order_independent_and_seed_dependent():
    records = two_camera(60, per_cam=2)
    a = mlr_assign_factors(records, seed=3)
    assert a == mlr_assign_factors(records, seed=3)
    shuffled = list(reversed(records))
    assert list(reversed(mlr_assign_factors(shuffled, seed=3))) == a
    assert a != mlr_assign_factors(records, seed=4)
    custom = mlr_assign_factors(records, factors=[8], seed=3)
    assert set(custom) == {1.0, 8.0}


def test_mlr_single_camera_person_stays_hr_and_bad_factors_are_rejected():
    records = [ImageRecord("a.jpg", 1, 0), ImageRecord("b.jpg", 1, 0), ImageRecord("c.jpg", 2, 0), ImageRecord("d.jpg", 2, 1)]
    assert mlr_assign_factors(records)[:2] == [1.0, 1.0]
    with pytest.raises(ProtocolError, match="factors"):
        mlr_assign_factors(records, factors=[1, 2])


def test_mlr_lr_camera_rule_fixed_camera_or_per_person_mapping():
    records = two_camera(30, per_cam=2) + [ImageRecord("solo.jpg", 99, 1)]
    fixed = mlr_assign_factors(records, lr_camera=1, seed=0)
    assert all((f > 1) == (r.camid == 1 and r.pid != 99) for r, f in zip(records, fixed))  # solo stays HR
    chosen = {pid: pid % 2 for pid in range(1, 21)}  # persons 21-30 are not named: they stay HR
    mapped = mlr_assign_factors(records, lr_camera=chosen, seed=0)
    assert all((f > 1) == (chosen.get(r.pid) == r.camid) for r, f in zip(records, mapped))
    with pytest.raises(ProtocolError, match="lr_camera must be 'random', a camera id"):
        mlr_assign_factors(records, lr_camera="far")


# ------------------------------------------------------------------ single-shot LR

def test_single_shot_viper_like_316_316():
    records = mlr(two_camera(632))
    splits = lr_single_shot_protocol(ReidDataset("mlr_viper", records), num_splits=10, seed=0)
    assert len(splits) == 10 and all(isinstance(s, EvalSplit) for s in splits)
    for s in splits:
        assert len(pids(s.query)) == 316 and len(s.gallery) == 316
        assert all(r.scale > 1 for r in s.query) and all(r.scale == 1 for r in s.gallery)
        assert pids(s.gallery) == pids(s.query)
        assert not pids(s.train) & pids(s.query)
        assert len(pids(s.train)) == 316
    assert len({frozenset(pids(s.query)) for s in splits}) == 10  # different identity splits


def test_single_shot_gallery_is_one_hr_image_per_person_redrawn_each_split():
    records = mlr(two_camera(30, per_cam=5))
    splits = lr_single_shot_protocol(records, num_test_ids=30, num_splits=5, seed=1)
    for s in splits:
        assert Counter(r.pid for r in s.gallery) == {p: 1 for p in range(1, 31)}
        assert len(s.query) == 30 * 5  # all LR images of the test persons
    assert len({tuple(r.path for r in s.gallery) for s in splits}) > 1


def test_single_shot_is_deterministic_given_the_seed():
    records = mlr(two_camera(50, per_cam=2))
    a = lr_single_shot_protocol(records, num_splits=3, seed=7)
    b = lr_single_shot_protocol(list(reversed(records)), num_splits=3, seed=7)
    key = lambda splits: [(sorted(r.path for r in s.query), sorted(r.path for r in s.gallery)) for s in splits]
    assert key(a) == key(b)
    assert key(a) != key(lr_single_shot_protocol(records, num_splits=3, seed=8))


def test_single_shot_official_split_uses_official_test_ids_and_leaves_out_persons_without_both(caplog):
    train = mlr(two_camera(10, split="train"))
    test = [r.with_(pid=r.pid + 100, split="query" if r.camid else "gallery", path="t" + r.path)
            for r in mlr(two_camera(8))]
    only_hr = [ImageRecord("t/x.jpg", 500, 0, split="gallery"), ImageRecord("t/0.jpg", 0, 1, split="gallery")]
    with caplog.at_level(logging.INFO, logger="lrreid"):
        splits = lr_single_shot_protocol(ReidDataset("m", train + test + only_hr), num_splits=2)
    assert "1 person left out" in caplog.text
    for s in splits:
        assert s.train == train
        assert pids(s.gallery) == set(range(101, 109)) == pids(s.query)


def test_single_shot_custom_probe_predicate_and_errors():
    records = two_camera(10)
    with pytest.raises(ProtocolError, match="no LR probe record"):
        lr_single_shot_protocol(records)
    splits = lr_single_shot_protocol(records, lambda r: r.camid == 1, num_splits=1)
    assert {r.camid for r in splits[0].query} == {1} and {r.camid for r in splits[0].gallery} == {0}
    with pytest.raises(ProtocolError, match="no person has both LR and HR"):
        lr_single_shot_protocol([r for r in records if r.camid == 1], lambda r: True)
    with pytest.raises(ProtocolError, match="cannot take 11 test persons from 10"):
        lr_single_shot_protocol(records, lambda r: r.camid == 1, num_test_ids=11)
    with pytest.raises(ProtocolError, match="official split"):
        lr_single_shot_protocol(records, lambda r: r.camid == 1, use_official_split=True)


# ------------------------------------------------------------------ genuine LR

def test_genuine_caviar_shape_25_25(caplog):
    with caplog.at_level(logging.INFO, logger="lrreid"):
        splits = genuine_lr_protocol(caviar_like(), seed=0)
    assert "22 persons left out" in caplog.text
    assert len(splits) == 10
    for s in splits:
        test_ids, train_ids = pids(s.query), pids(s.train)
        assert len(test_ids) == 25 and len(train_ids) == 25 and not test_ids & train_ids
        assert all(p <= 50 for p in test_ids | train_ids)  # near-only persons never used
        assert {r.camid for r in s.query} == {1} and len(s.query) == 250
        assert Counter(r.pid for r in s.gallery) == {p: 1 for p in test_ids}
        assert {r.camid for r in s.gallery} == {0}
        assert len(s.train) == 25 * 20  # all images of the training persons, both cameras
    assert len({frozenset(pids(s.query)) for s in splits}) == 10


def test_genuine_options_and_determinism():
    ds = caviar_like()
    a = genuine_lr_protocol(ds, num_train_ids=20, num_test_ids=10, num_splits=2, seed=5, gallery_per_person=None)
    assert len(pids(a[0].train)) == 20 and len(pids(a[0].query)) == 10 and len(a[0].gallery) == 100
    b = genuine_lr_protocol(ds, num_train_ids=20, num_test_ids=10, num_splits=2, seed=5, gallery_per_person=None)
    assert [[r.path for r in s.query] for s in a] == [[r.path for r in s.query] for s in b]
    three = genuine_lr_protocol(ds, num_splits=1, gallery_per_person=3)[0]
    assert set(Counter(r.pid for r in three.gallery).values()) == {3}


def test_genuine_errors_are_one_line():
    ds = caviar_like(num_both=4, num_near_only=2, per_cam=1)
    for kwargs, pattern in [
        ({"num_train_ids": 25, "num_test_ids": 25}, "cannot take 25 training \\+ 25 test persons from 4"),
        ({"lr_camid": 3}, "lr_camid=3 has no image"),
        ({"num_splits": 0}, "num_splits"),
    ]:
        with pytest.raises(ProtocolError, match=pattern) as info:
            genuine_lr_protocol(ds, **kwargs)
        assert "\n" not in str(info.value)
    near_only = ReidDataset("n", [r for r in ds.records if r.pid > 4] + [ImageRecord("z.jpg", 1, 1)])
    with pytest.raises(ProtocolError, match="no person has images from both"):
        genuine_lr_protocol(near_only)


# ------------------------------------------------------------------ cross-view

def aerial_ground(num_ids=20, per_view=3, split=None) -> ReidDataset:
    records = [ImageRecord(f"{view}/{pid}_{i}.jpg", pid, cam, split=split, view=view)
               for pid in range(1, num_ids + 1) for cam, view in ((0, "ground"), (1, "aerial")) for i in range(per_view)]
    return ReidDataset("ag", records)


def test_cross_view_directions_and_identity_split():
    ds = aerial_ground()
    a2g = cross_view_protocol(ds, "aerial", "ground", num_splits=3, seed=0)
    for s in a2g:
        assert {r.view for r in s.query} == {"aerial"} and {r.view for r in s.gallery} == {"ground"}
        assert pids(s.query) == pids(s.gallery) and len(pids(s.query)) == 10
        assert not pids(s.train) & pids(s.query)
    g2a = cross_view_protocol(ds, "ground", "aerial", num_splits=3, seed=0)
    assert [pids(s.query) for s in g2a] == [pids(s.query) for s in a2g]  # same persons, roles swapped
    a2a = cross_view_protocol(ds, "aerial", "aerial", num_splits=1)[0]
    assert Counter(r.pid for r in a2a.query) == {p: 1 for p in pids(a2a.query)}
    assert not {r.path for r in a2a.query} & {r.path for r in a2a.gallery}
    assert {r.view for r in a2a.query + a2a.gallery} == {"aerial"}


def test_cross_view_keeps_queries_absent_from_the_gallery_and_uses_official_split():
    ds = aerial_ground(split="query")
    train = [r.with_(pid=r.pid + 100, split="train") for r in aerial_ground(4).records]
    extra = [ImageRecord("aerial/99.jpg", 99, 1, split="query", view="aerial")]  # never seen from the ground
    s = cross_view_protocol(ReidDataset("off", ds.records + train + extra), num_splits=1)[0]
    assert 99 in pids(s.query) and 99 not in pids(s.gallery)
    assert s.train == train


def test_cross_view_empty_group_is_an_error():
    ds = aerial_ground()
    with pytest.raises(ProtocolError, match="no record has view 'uav' \\(views present: aerial, ground\\)"):
        cross_view_protocol(ds, "uav", "ground")


# ------------------------------------------------------------------ MLR-PRID (PRID2011 single-shot)

def prid_like(num_both=20, num_a_only=9, num_b_only=27) -> list[ImageRecord]:
    """PRID2011 single-shot's shape, scaled down: persons 1..num_both in both cameras, then cam_a-only
    persons, then cam_b-only persons (one image per person and camera)."""
    records = [ImageRecord(f"p/cam_a/person_{pid:04d}.png", pid, 0) for pid in range(1, num_both + num_a_only + 1)]
    records += [ImageRecord(f"p/cam_b/person_{pid:04d}.png", pid, 1)
                for pid in [*range(1, num_both + 1), *range(num_both + num_a_only + 1, num_both + num_a_only + num_b_only + 1)]]
    return records


def mlr_prid(records, lr_camera=0) -> ReidDataset:
    factors = mlr_assign_factors(records, seed=0, lr_camera=lr_camera)
    return ReidDataset("prid2011", [r.with_(scale=f) for r, f in zip(records, factors)])


def test_mlr_prid_half_of_the_two_camera_persons_test_the_others_train_one_camera_persons_never_train():
    splits = lr_single_shot_protocol(mlr_prid(prid_like()), num_splits=3, seed=0)
    for s in splits:
        assert len(pids(s.query)) == 10 and all(r.camid == 0 and r.scale > 1 for r in s.query)
        assert pids(s.train) | pids(s.query) == set(range(1, 21))  # only two-camera persons train
        assert not pids(s.train) & pids(s.query)
        assert len(s.gallery) == 10  # no distractors unless asked for


def test_mlr_prid_distractors_are_the_hr_camera_only_persons_in_every_split():
    splits = lr_single_shot_protocol(mlr_prid(prid_like()), num_splits=3, seed=0, distractors=True)
    b_only = set(range(30, 57))
    for s in splits:
        assert all(r.camid == 1 and r.scale == 1 for r in s.gallery)
        assert pids(s.gallery) == pids(s.query) | b_only  # 10 test persons + 27 cam_b-only distractors
        assert len(s.gallery) == 37
        assert not pids(s.train) & b_only and not pids(s.gallery) & set(range(21, 30))  # cam_a-only: nowhere


def test_distractors_need_a_camera_that_gives_no_probe():
    with pytest.raises(ProtocolError, match="distractors.*every camera"):
        lr_single_shot_protocol(mlr_prid(prid_like(), lr_camera="random"), num_splits=1, distractors=True)


def test_mlr_never_down_samples_distractors():
    records = two_camera(10, per_cam=2) + [ImageRecord(f"g/0000_{cam}_{i}.jpeg", 0, cam) for cam in (2, 5) for i in range(4)]
    factors = mlr_assign_factors(records, seed=0)
    assert all(f == 1.0 for r, f in zip(records, factors) if r.pid == 0)
    assert all(f == 1.0 for r, f in zip(records, mlr_assign_factors(records, lr_camera=2)) if r.pid == 0)


# ------------------------------------------------------------------ GRID

def grid_like(num_pairs=20, num_distractors=31, official=None) -> ReidDataset:
    """GRID's shape, scaled down: one probe-folder and one gallery-folder image per person, cameras
    1..8 mixed, and pid-0 distractors in the gallery folder only."""
    records = []
    for pid in range(1, num_pairs + 1):
        records.append(ImageRecord(f"u/probe/{pid:04d}_{pid % 8 + 1}.jpeg", pid, pid % 8, view="probe"))
        records.append(ImageRecord(f"u/gallery/{pid:04d}_{(pid + 3) % 8 + 1}.jpeg", pid, (pid + 3) % 8, view="gallery"))
    records += [ImageRecord(f"u/gallery/0000_{i % 8 + 1}_{i}.jpeg", 0, i % 8, view="gallery") for i in range(num_distractors)]
    return ReidDataset("grid", records, official_train_ids=official or [])


def test_grid_random_splits_half_the_pairs_probe_folder_probes_every_distractor_in_every_gallery():
    splits = grid_protocol(grid_like(), num_splits=10, seed=0)
    assert len(splits) == 10 and len({tuple(sorted(pids(s.query))) for s in splits}) > 1
    for s in splits:
        assert len(pids(s.train)) == 10 and len(s.query) == 10 and not pids(s.train) & pids(s.query)
        assert all(r.view == "probe" for r in s.query)
        assert all(r.view == "gallery" for r in s.gallery)
        assert pids(s.gallery) == pids(s.query) | {0} and sum(r.pid == 0 for r in s.gallery) == 31
        assert 0 not in pids(s.train) and len(s.train) == 20  # both folders of the training persons
        assert any("random" in n and "features_and_partitions.mat" in n for n in s.notes)
    assert grid_protocol(grid_like(), num_splits=2, seed=0)[1].query == splits[1].query  # seeded


def test_grid_official_partitions_are_the_splits():
    official = [tuple(range(1, 11)), tuple(range(11, 21))]
    splits = grid_protocol(grid_like(official=official), num_splits=2)
    assert pids(splits[0].train) == set(range(1, 11)) and pids(splits[0].query) == set(range(11, 21))
    assert pids(splits[1].train) == set(range(11, 21))
    assert any("official partition" in n for n in splits[0].notes)
    with pytest.raises(ProtocolError, match="3 splits.*2 official"):
        grid_protocol(grid_like(official=official), num_splits=3)


def test_grid_persons_without_a_pair_are_said_loudly(caplog):
    ds = grid_like()
    ds.records = [r for r in ds.records if not (r.pid == 5 and r.view == "gallery")]
    with caplog.at_level(logging.WARNING, logger="lrreid"):
        splits = grid_protocol(ds, num_splits=1)
    assert "1 person" in caplog.text and 5 not in pids(splits[0].train) | pids(splits[0].query)
    assert any("left out" in n for n in splits[0].notes)


def test_grid_without_folder_views_is_an_error():
    ds = ReidDataset("grid", [r.with_(view=None) for r in grid_like().records])
    with pytest.raises(ProtocolError, match="view 'probe'"):
        grid_protocol(ds, num_splits=1)
