"""Records -> tensors, and the P x K identity sampler the engine uses (global batch split across ranks)."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from lrreid.data.imageio import BadImagePolicy
from lrreid.data.loading import (
    ImageDataset, RandomIdentitySampler, TrackletDataset, frame_indices, resize_tensor, to_tensor,
)
from lrreid.data.records import ImageRecord, TrackletRecord
from lrreid.errors import ConfigError, ImageReadError


def write(path, colour, size=(16, 32)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return str(path)


@pytest.fixture
def images(tmp_path):
    recs = []
    for pid in (1, 2):
        for i in range(3):
            recs.append(ImageRecord(write(tmp_path / f"{pid}_{i}.png", (pid * 60, i * 60, 10)), pid, i % 2))
    return recs


# ------------------------------------------------------------------ tensors

def test_to_tensor_and_resize_tensor():
    img = Image.new("RGB", (4, 6), (255, 0, 128))
    x = to_tensor(img)
    assert x.shape == (3, 6, 4) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0, 0], torch.tensor([1.0, 0.0, 128 / 255]))
    y = resize_tensor(torch.rand(2, 3, 32, 16), (8, 4))
    assert y.shape == (2, 3, 8, 4) and 0 <= y.min() and y.max() <= 1


# ------------------------------------------------------------------ ImageDataset

def test_image_dataset_items_and_dataloader(images):
    ds = ImageDataset(images)
    item = ds[4]
    assert item["pid"] == 2 and item["camid"] == 1 and item["index"] == 4
    assert item["image"].shape == (3, 32, 16)
    assert torch.allclose(item["image"][:, 0, 0], torch.tensor([120, 60, 10]) / 255.0)
    assert ds.pids == [1, 1, 1, 2, 2, 2]
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 3, 32, 16) and batch["pid"].tolist() == [1, 1, 1]
    resized = ImageDataset(images, transform=lambda im: to_tensor(im.resize((8, 8))))
    assert resized[0]["image"].shape == (3, 8, 8)


def test_bad_image_raise_or_replace_by_same_identity(images, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    records = images + [ImageRecord(str(broken), 2, 1)]
    with pytest.raises(ImageReadError, match="broken.png"):
        ImageDataset(records)[6]
    policy = BadImagePolicy("skip")
    ds = ImageDataset(records, policy=policy)
    item = ds[6]
    assert item["pid"] == 2 and item["index"] == 6
    assert item["image"][0, 0, 0].item() == pytest.approx(120 / 255)  # a person-2 image stands in
    assert policy.total == 1
    alone = ImageDataset([ImageRecord(str(broken), 7, 0)], policy="skip")
    with pytest.raises(ImageReadError, match="person 7: no readable sample"):
        alone[0]


# ------------------------------------------------------------------ TrackletDataset

def test_frame_indices():
    assert frame_indices(10, 4, "evenly") == [0, 3, 6, 9]
    assert frame_indices(1, 3, "evenly") == [0, 0, 0]
    assert frame_indices(5, 2, "all") == [0, 1, 2, 3, 4]
    picks = frame_indices(20, 6, "random", np.random.default_rng(0))
    assert picks == sorted(picks) and len(set(picks)) == 6
    assert len(frame_indices(2, 5, "random", np.random.default_rng(0))) == 5
    with pytest.raises(ConfigError, match="'middle' is not one of"):
        frame_indices(5, 2, "middle")


def test_tracklet_dataset_sizes_repeats_and_resizing(tmp_path):
    frames = [write(tmp_path / "t" / f"f{i}.png", (i * 20, 0, 0), size=(16, 32) if i else (8, 16)) for i in range(10)]
    single = [write(tmp_path / "s" / "f0.png", (0, 200, 0))]
    records = [TrackletRecord(tuple(frames), 1, 0), TrackletRecord(tuple(single), 2, 1)]
    ds = TrackletDataset(records, num_frames=4, sampling="evenly")
    item = ds[0]
    assert item["frames"].shape == (4, 3, 16, 8)  # every frame resized to the first frame's size
    assert [round(v * 255) for v in item["frames"][:, 0, 0, 0].tolist()] == [0, 60, 120, 180]
    one = ds[1]
    assert one["frames"].shape == (4, 3, 32, 16) and one["pid"] == 2
    assert torch.equal(one["frames"][0], one["frames"][3])
    assert TrackletDataset(records, sampling="all")[0]["frames"].shape[0] == 10


def test_tracklet_random_sampling_is_seeded_and_changes_with_the_epoch(tmp_path):
    frames = [write(tmp_path / f"f{i}.png", (i * 12, 0, 0)) for i in range(20)]
    ds = TrackletDataset([TrackletRecord(tuple(frames), 1, 0)], num_frames=4, sampling="random", seed=3)
    torch.manual_seed(0)
    a = ds[0]["frames"][:, 0, 0, 0]
    torch.manual_seed(0)
    assert torch.equal(a, ds[0]["frames"][:, 0, 0, 0])
    draws = set()
    for epoch in range(5):
        ds.set_epoch(epoch)
        draws.add(tuple(ds[0]["frames"][:, 0, 0, 0].tolist()))
    assert len(draws) > 1


def test_tracklet_bad_frames_skipped_or_raised(tmp_path):
    good = [write(tmp_path / f"f{i}.png", (100, 0, 0)) for i in range(3)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    record = TrackletRecord((good[0], str(bad), good[1], good[2]), 1, 0)
    with pytest.raises(ImageReadError, match="bad.png"):
        TrackletDataset([record], num_frames=4)[0]
    ds = TrackletDataset([record], num_frames=4, policy="skip")
    assert ds[0]["frames"].shape == (4, 3, 32, 16) and ds.policy.total == 1


# ------------------------------------------------------------------ RandomIdentitySampler

def make_pids(counts):
    return [pid for pid, n in enumerate(counts) for _ in range(n)]


def test_sampler_yields_pk_batches_of_distinct_identities():
    pids = make_pids([5, 1, 8, 4, 3, 6, 2, 9])
    sampler = RandomIdentitySampler(pids, batch_size=8, num_instances=2, seed=0)
    order = list(sampler)
    assert len(order) == len(sampler) and len(order) % 8 == 0 and len(order) > 0
    for start in range(0, len(order), 8):
        batch = [pids[i] for i in order[start:start + 8]]
        counts = Counter(batch)
        assert len(counts) == 4 and set(counts.values()) == {2}
    few = make_pids([1, 2, 2, 2])  # identity 0 has one image: it is sampled with replacement
    order = list(RandomIdentitySampler(few, batch_size=4, num_instances=2, seed=0))
    assert Counter(order)[0] == 2 and len(order) == 8


def test_sampler_uses_every_group_when_identities_are_balanced_and_keeps_its_length():
    pids = make_pids([8] * 6)  # 6 identities x 4 groups of K=2, P=4 per batch: 6 full batches fit
    sampler = RandomIdentitySampler(pids, batch_size=8, num_instances=2, seed=0)
    for epoch in range(4):
        sampler.set_epoch(epoch)
        assert sorted(sampler) == list(range(48))
    uneven = RandomIdentitySampler(make_pids([9, 2, 7, 3, 5, 5, 1, 6]), batch_size=8, num_instances=2, seed=0)
    lengths = set()
    for epoch in range(4):
        uneven.set_epoch(epoch)
        lengths.add(len(uneven))
        assert len(list(uneven)) == len(uneven)
    assert len(lengths) == 1


def test_sampler_is_deterministic_and_reshuffles_per_epoch():
    pids = make_pids([4] * 12)
    a = RandomIdentitySampler(pids, 8, 4, seed=1)
    b = RandomIdentitySampler(pids, 8, 4, seed=1)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == sorted(first)


@pytest.mark.parametrize("world_size", [2, 4])
def test_sampler_ranks_take_contiguous_shares_of_the_global_batch(world_size):
    pids = make_pids([3, 7, 4, 4, 5, 2, 6, 4, 4, 8])
    single = RandomIdentitySampler(pids, batch_size=16, num_instances=4, seed=5)
    single.set_epoch(2)
    whole = list(single)
    shares = []
    for rank in range(world_size):
        s = RandomIdentitySampler(pids, batch_size=16, num_instances=4, seed=5, rank=rank, world_size=world_size)
        s.set_epoch(2)
        shares.append(list(s))
        assert len(s) == len(whole) // world_size
    per = 16 // world_size
    rebuilt = [i for b in range(len(whole) // 16) for r in range(world_size) for i in shares[r][b * per:(b + 1) * per]]
    assert rebuilt == whole


def test_sampler_in_a_dataloader_matches_the_engine_contract():
    pids = make_pids([4] * 10)
    ds = torch.utils.data.TensorDataset(torch.tensor(pids))
    sampler = RandomIdentitySampler(pids, batch_size=8, num_instances=4, seed=0, rank=1, world_size=2)
    loader = torch.utils.data.DataLoader(ds, batch_size=4, sampler=sampler, drop_last=True)
    batches = [b[0].tolist() for b in loader]
    assert len(batches) == len(loader) > 0
    assert all(len(set(b)) == 1 for b in batches)  # rank 1's half of P=2 x K=4 is one whole identity


def test_sampler_errors():
    with pytest.raises(ConfigError, match="multiple of num_instances"):
        RandomIdentitySampler([0, 1], 6, 4)
    assert len(RandomIdentitySampler([0, 0, 1, 1], 16, 4)) == 0  # fewer than P identities: no batch
    with pytest.raises(ConfigError, match="divisible by the number of processes 3"):
        RandomIdentitySampler(make_pids([4] * 8), 8, 4, world_size=3, rank=0)
