"""S3-CLIP's tracklet data on awkward input: one-frame tracklets, frames of different sizes, empty
tracklets, CAVIAR-style image records turned into pseudo-tracklets, degradation-aware LR copies."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lrreid.data.records import ImageRecord, TrackletRecord
from lrreid.errors import ConfigError
from lrreid.methods.s3clip.data import (
    TrackletFrames,
    TrackletTriplets,
    pseudo_tracklets,
    usable_tracklets,
)


def _frames(folder, name: str, sizes: list[tuple[int, int]], colour: int = 100) -> tuple[str, ...]:
    """PNG frames of the given (w, h) sizes; each frame a different grey so order is visible."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, (w, h) in enumerate(sizes):
        path = folder / f"{name}_{t:03d}.png"
        Image.new("RGB", (w, h), (colour + 10 * t,) * 3).save(path)
        paths.append(str(path))
    return tuple(paths)


def test_triplets_cope_with_one_frame_tracklets_frames_of_different_sizes_and_empty_tracklets(tmp_path):
    hr_one = TrackletRecord(_frames(tmp_path / "g1", "a", [(32, 64)]), pid=0, camid=0, view="ground")
    hr_mixed = TrackletRecord(_frames(tmp_path / "g2", "b", [(32, 64), (40, 90), (20, 50)]), pid=1, camid=0,
                              view="ground")
    lr_mixed = TrackletRecord(_frames(tmp_path / "a1", "c", [(9, 20), (12, 25)]), pid=1, camid=1, view="aerial")
    empty = TrackletRecord((), pid=0, camid=1, view="aerial")
    data = TrackletTriplets([hr_one, hr_mixed, lr_mixed, empty], input_size=(64, 32), scale=2, num_frames=4,
                            sampling="evenly")
    assert len(data) == 2 and data.skipped["empty tracklet"] == 1
    one = data[0]
    assert one["hr"].shape == (4, 3, 64, 32) and one["lr_synthetic"].shape == (4, 3, 32, 16)
    assert torch.equal(one["hr"][0], one["hr"][3])  # the only frame, repeated
    assert not bool(one["has_natural"])  # person 0's only aerial tracklet is empty
    assert torch.equal(one["lr_natural"], one["lr_synthetic"])
    mixed = data[1]
    assert mixed["hr"].shape == (4, 3, 64, 32)
    assert mixed["lr_natural"].shape == (4, 3, 32, 16) and bool(mixed["has_natural"])
    assert mixed["pid"] == 1


def test_triplets_need_hr_tracklets_and_refuse_all_frames_in_training(tmp_path):
    lr = TrackletRecord(_frames(tmp_path, "a", [(9, 20)]), pid=0, camid=1, view="aerial")
    with pytest.raises(ConfigError, match="no high-resolution training tracklets"):
        TrackletTriplets([lr], input_size=(64, 32))
    with pytest.raises(ConfigError, match="'all'"):
        TrackletTriplets([lr], input_size=(64, 32), sampling="all")
    with pytest.raises(ConfigError, match="not divisible"):
        TrackletTriplets([lr.with_(view="ground")], input_size=(63, 32))


def test_degradation_aware_lr_copy_differs_from_plain_bicubic(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "g"
    folder.mkdir()
    paths = []
    for t in range(2):
        p = folder / f"f{t}.png"
        Image.fromarray(rng.integers(0, 255, (64, 32, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    rec = TrackletRecord(tuple(paths), pid=0, camid=0, view="ground")
    plain = TrackletTriplets([rec], input_size=(64, 32), num_frames=2, sampling="evenly")[0]
    degraded = TrackletTriplets([rec], input_size=(64, 32), num_frames=2, sampling="evenly",
                                lr_degradation="blur+jpeg")[0]
    assert degraded["lr_synthetic"].shape == plain["lr_synthetic"].shape == (2, 3, 32, 16)
    assert (degraded["lr_synthetic"] - plain["lr_synthetic"]).abs().mean() > 0.01
    assert torch.equal(degraded["hr"], plain["hr"])
    with pytest.raises(ConfigError, match="unknown degradation"):
        TrackletTriplets([rec], input_size=(64, 32), lr_degradation="blurr")


def test_pseudo_tracklets_group_caviar_images_by_person_and_camera_in_index_order(tmp_path):
    names = ["0001011.jpg", "0001001.jpg", "0001002.jpg", "0002001.jpg", "0001012.jpg"]
    records = []
    for name in names:
        path = tmp_path / name
        Image.new("RGB", (20, 40)).save(path)
        index = int(name[4:7])
        near = index <= 10
        records.append(ImageRecord(str(path), pid=int(name[:4]), camid=0 if near else 1,
                                   view="near" if near else "far"))
    tracklets = sorted(pseudo_tracklets(records), key=lambda t: (t.pid, t.camid))
    assert [(t.pid, t.camid, t.view, len(t.frames)) for t in tracklets] == [
        (1, 0, "ground", 2), (1, 1, "aerial", 2), (2, 0, "ground", 1)]
    assert [p.split("/")[-1] for p in tracklets[0].frames] == ["0001001.jpg", "0001002.jpg"]
    assert [p.split("/")[-1] for p in tracklets[1].frames] == ["0001011.jpg", "0001012.jpg"]
    chunks = pseudo_tracklets(records[:3], max_frames=1)
    assert len(chunks) == 3


def test_eval_frames_keep_native_size_when_asked_and_degrade_every_frame_alike(tmp_path):
    rec = TrackletRecord(_frames(tmp_path, "a", [(10, 20), (12, 26), (10, 20)]), pid=3, camid=1, view="aerial")
    native = TrackletFrames([rec], size_of=lambda r: None, num_frames=3)[0]
    assert native["frames"].shape == (3, 3, 20, 10)  # the first frame's size
    fixed = TrackletFrames([rec], size_of=lambda r: (32, 16), num_frames=2, degradation="blur")[0]
    assert fixed["frames"].shape == (2, 3, 32, 16)
    kept, empty = usable_tracklets([rec, TrackletRecord((), 1, 1)])
    assert kept == [rec] and empty == 1


def test_classifier_counts_only_identities_with_an_hr_tracklet():
    from lrreid.config import load_config
    from lrreid.data.records import TrackletRecord, relabel
    from lrreid.methods.s3clip import S3ClipSpec

    records = [TrackletRecord(frames=(f"t/{pid}_{view}.png",), pid=pid, camid=int(view == "aerial"), view=view)
               for pid in range(1, 4) for view in ("ground", "aerial")]
    records += [TrackletRecord(frames=(f"t/{pid}_aerial.png",), pid=pid, camid=1, view="aerial") for pid in range(4, 9)]
    train, mapping = relabel(records)
    cfg = load_config({"method": "s3clip", "data": {"input_size": [64, 32]}, "model": {"clip": "tiny", "adapter_dim": 8},
                       "sr": {"model": "swinir_s", "args": {"embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4}},
                       "sampling": {"pseudo_tracklets": False}})
    method = S3ClipSpec.build(cfg, train, len(mapping))
    assert method.num_classes == 3 and method.prompts.num_classes == 3  # five aerial-only persons give no sample
    assert sorted({r.pid for r in method.train_records}) == [0, 1, 2]


def test_a_triplet_is_hr_its_bicubic_lr_copy_and_a_natural_lr_tracklet_of_the_same_person(tmp_path):
    """lr_synthetic is the bicubic copy of exactly the HR frames drawn; lr_natural comes from the
    same person's aerial tracklet (never another person's), at the LR grid."""
    from lrreid.data.degradations import bicubic_resize
    from lrreid.data.imageio import read_image

    rng = np.random.default_rng(0)

    def noisy_frames(folder, name, n, size):
        folder.mkdir(parents=True, exist_ok=True)
        out = []
        for t in range(n):
            path = folder / f"{name}_{t:03d}.png"
            Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
            out.append(str(path))
        return tuple(out)

    records = []
    for pid in (0, 1, 2):
        records.append(TrackletRecord(noisy_frames(tmp_path / f"g{pid}", "g", 6, (32, 64)), pid, 0, view="ground"))
        records.append(TrackletRecord(noisy_frames(tmp_path / f"a{pid}", "a", 5, (16, 32)), pid, 1, view="aerial"))
    ds = TrackletTriplets(records, input_size=(64, 32), scale=2, num_frames=3, sampling="random")
    aerial_frames = {r.pid: {p for p in r.frames} for r in records if r.view == "aerial"}
    for index in range(len(ds)):
        item = ds[index]
        anchor = ds.anchors[index]
        assert item["hr"].shape == (3, 3, 64, 32) and item["lr_synthetic"].shape == (3, 3, 32, 16)
        # which HR frames were drawn: match each HR frame to the anchor's files
        files = [np.asarray(bicubic_resize(read_image(p), (64, 32)), dtype=np.float32) / 255 for p in anchor.frames]
        for hr, syn in zip(item["hr"], item["lr_synthetic"]):
            hr_np = hr.permute(1, 2, 0).numpy()
            drawn = min(range(len(files)), key=lambda i: np.abs(files[i] - hr_np).mean())
            assert np.abs(files[drawn] - hr_np).max() < 1e-6
            from PIL import Image as PILImage

            expected = bicubic_resize(PILImage.fromarray((files[drawn] * 255).round().astype(np.uint8)), (32, 16))
            assert np.abs(np.asarray(expected, dtype=np.float32) / 255 - syn.permute(1, 2, 0).numpy()).max() < 1e-6
        assert bool(item["has_natural"]) and item["lr_natural"].shape == (3, 3, 32, 16)
        own = [np.asarray(bicubic_resize(read_image(p), (32, 16)), dtype=np.float32) / 255 for p in aerial_frames[anchor.pid]]
        others = [np.asarray(bicubic_resize(read_image(p), (32, 16)), dtype=np.float32) / 255
                  for pid, paths in aerial_frames.items() if pid != anchor.pid for p in paths]
        for frame in item["lr_natural"]:
            f = frame.permute(1, 2, 0).numpy()
            assert min(np.abs(o - f).max() for o in own) < 1e-6
            assert min(np.abs(o - f).max() for o in others) > 0.1
