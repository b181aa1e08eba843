"""PRI's training triplets: which images are LR/HR, skipped identities, canvases, joint flips."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from lrreid.data.records import ImageRecord
from lrreid.errors import ProtocolError
from lrreid.methods.pri.data import TripletDataset, split_by_resolution


def _img(path, hw, left_bright=False):
    arr = np.full((hw[0], hw[1], 3), 60, np.uint8)
    if left_bright:
        arr[:, : hw[1] // 2] = 230  # left half bright: a flip moves it to the right
    Image.fromarray(arr).save(path)
    return str(path)


def test_scale_marks_lr_images_and_one_sided_identities_are_skipped(caplog):
    recs = [ImageRecord("a_hr.png", 0, 0), ImageRecord("a_lr.png", 0, 1, scale=3.0),
            ImageRecord("b_hr.png", 1, 0), ImageRecord("b_hr2.png", 1, 1),          # HR only
            ImageRecord("c_lr.png", 2, 1, scale=2.0)]                                # LR only
    with caplog.at_level(logging.WARNING, logger="lrreid"):
        res = split_by_resolution(recs)
    assert [r.path for r in res.lr] == ["a_lr.png"] and list(res.hr_by_pid) == [0]
    assert res.skipped == {"identities with LR images only": 1, "identities with HR images only": 1}
    assert "skipping 1 training identities with HR images only" in caplog.text


def test_genuine_lr_camera_is_the_one_with_the_smallest_images(tmp_path):
    recs = []
    for pid in range(3):
        recs.append(ImageRecord(_img(tmp_path / f"{pid}_near.png", (90, 36)), pid, 0))
        recs.append(ImageRecord(_img(tmp_path / f"{pid}_far.png", (56, 24)), pid, 1))
    res = split_by_resolution(recs)
    assert res.lr_cameras == [1] and all(r.camid == 1 for r in res.lr)
    assert split_by_resolution(recs, lr_cameras=[0]).lr_cameras == [0]


def test_no_triplet_possible_is_one_line():
    with pytest.raises(ProtocolError, match="cannot tell LR from HR"):
        split_by_resolution([ImageRecord("x.png", 0, 0), ImageRecord("y.png", 1, 0)])
    with pytest.raises(ProtocolError, match="no training identity has both LR and HR"):
        split_by_resolution([ImageRecord("x.png", 0, 0), ImageRecord("y.png", 1, 1, scale=2.0)])


def test_items_are_resized_to_the_canvases_and_flipped_together(tmp_path):
    lr = [ImageRecord(_img(tmp_path / f"lr{i}.png", (30 + i, 12), left_bright=True), 0, 1, scale=2.0) for i in range(3)]
    hr = {0: [ImageRecord(_img(tmp_path / "hr.png", (64, 32), left_bright=True), 0, 0)]}
    ds = TripletDataset(lr, hr, lr_size=(32, 16), hr_size=(64, 32), flip=True)
    assert ds.pids == [0, 0, 0] and len(ds) == 3
    torch.manual_seed(0)
    seen = set()
    for _ in range(20):
        item = ds[1]
        assert item["x_l"].shape == (3, 32, 16) and item["x_h"].shape == (3, 64, 32) and item["lr_index"] == 1
        left_l = item["x_l"][:, :, :8].mean() > item["x_l"][:, :, 8:].mean()
        left_h = item["x_h"][:, :, :16].mean() > item["x_h"][:, :, 16:].mean()
        assert left_l == left_h  # x_l and x_h are flipped together (x_sl is made from x_h)
        seen.add(bool(left_l))
    assert seen == {True, False}


def test_native_lr_size_keeps_each_image_at_its_own_size_inside_a_padded_canvas(tmp_path):
    # MLR: a x4 image must stay smaller than a x2 image of the same person (no common canvas resize)
    lr = [ImageRecord(_img(tmp_path / f"lr{i}.png", hw, left_bright=True), 0, 1, scale=s)
          for i, (hw, s) in enumerate([((32, 12), 2.0), ((16, 6), 4.0), ((21, 8), 3.0)])]
    hr = {0: [ImageRecord(_img(tmp_path / "hr.png", (64, 24), left_bright=True), 0, 0)]}
    ds = TripletDataset(lr, hr, lr_size=None, hr_size=(64, 24), flip=True)
    assert ds.lr_canvas == (32, 12)
    torch.manual_seed(0)
    seen = set()
    for _ in range(12):
        item = ds[1]
        assert item["x_l"].shape == (3, 32, 12) and item["lr_hw"].tolist() == [16, 6]
        inside = item["x_l"][:, :16, :6]
        assert (item["x_l"][:, 16:] == 0).all() and (item["x_l"][:, :, 6:] == 0).all()  # padding only outside
        left_l = inside[:, :, :3].mean() > inside[:, :, 3:].mean()
        left_h = item["x_h"][:, :, :12].mean() > item["x_h"][:, :, 12:].mean()
        assert left_l == left_h  # flipped together, and the flip happens before padding
        seen.add(bool(left_l))
    assert seen == {True, False}
    batch = torch.utils.data.default_collate([ds[i] for i in range(3)])
    assert batch["x_l"].shape == (3, 3, 32, 12) and batch["lr_hw"].tolist() == [[32, 12], [16, 6], [21, 8]]


def test_native_lr_canvas_is_never_larger_than_the_hr_canvas(tmp_path):
    # GRID's genuine protocol: one odd 347x169 LR image made a canvas larger than the HR one (15 GB RSS)
    lr = [ImageRecord(_img(tmp_path / f"lr{i}.png", hw), 0, 1) for i, hw in enumerate([(40, 16), (347, 169), (30, 20)])]
    hr = {0: [ImageRecord(_img(tmp_path / "hr.png", (64, 24)), 0, 0)]}
    ds = TripletDataset(lr, hr, lr_size=None, hr_size=(64, 24))
    assert ds.lr_canvas == (64, 24)
    item = ds[1]
    assert item["x_l"].shape == (3, 64, 24)
    h, w = item["lr_hw"].tolist()
    assert h <= 64 and w <= 24 and abs(h / w - 347 / 169) < 0.2  # shrunk to fit, aspect ratio kept
