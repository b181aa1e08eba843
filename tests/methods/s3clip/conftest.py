"""Tiny S3-CLIP pieces shared by the tests: a small synthetic video set and a method builder."""
from __future__ import annotations

import pytest
import torch

from lrreid.data.datasets import build_dataset
from lrreid.data.records import relabel
from lrreid.methods.base import EpochContext
from lrreid.methods.s3clip.config import ModelConfig, PhaseConfig, PhasesConfig, S3ClipConfig, SamplingConfig, SRConfig
from lrreid.methods.s3clip.model import S3ClipMethod
from lrreid.models.reid.clip_reid import build_clip_reid_encoders
from lrreid.models.sr import build_sr_model

INPUT_SIZE = (64, 32)
TINY_SWINIR = {"embed_dim": 12, "depths": [1], "num_heads": [2], "window_size": 4}


@pytest.fixture(scope="session")
def video_dataset(tmp_path_factory):
    """8 people, one ground (HR) and one aerial (LR) tracklet of 4 frames each."""
    cache = tmp_path_factory.mktemp("synthetic-video")
    return build_dataset("synthetic_video", num_ids=8, tracklets_per_camera=1, frames_per_tracklet=4, cache_dir=str(cache))


@pytest.fixture(scope="session")
def train_records(video_dataset):
    records, _ = relabel(video_dataset.records)
    return records


def _tiny_config(**sections) -> S3ClipConfig:
    cfg = S3ClipConfig(
        model=ModelConfig(clip="tiny", adapter_dim=8),
        sr=SRConfig(model="swinir_s", args=dict(TINY_SWINIR)),
        sampling=SamplingConfig(num_frames=3, eval_frames=3),
        phases=PhasesConfig(prompt=PhaseConfig(1, 1e-2), sr=PhaseConfig(1, 1e-3), reid=PhaseConfig(1, 1e-3),
                            joint=PhaseConfig(1, 1e-3)),
    )
    for name, value in sections.items():
        setattr(cfg, name, value)
    return cfg


def _make_method(records, cfg: S3ClipConfig | None = None, seed: int = 0) -> S3ClipMethod:
    torch.manual_seed(seed)
    cfg = cfg or _tiny_config()
    image, text = build_clip_reid_encoders("tiny", image_size=INPUT_SIZE, adapter_dim=cfg.model.adapter_dim,
                                           pooling=cfg.model.pooling)
    sr = build_sr_model(cfg.sr.model, **cfg.sr.args)
    num_classes = len({r.pid for r in records})
    return S3ClipMethod(sr=sr, image_encoder=image, text_encoder=text, train_records=records,
                        num_classes=num_classes, config=cfg, input_size=INPUT_SIZE, seed=seed,
                        sr_name=cfg.sr.model, clip_name="tiny")


def _cpu_context(**kw) -> EpochContext:
    return EpochContext(device=torch.device("cpu"), batch_size=kw.pop("batch_size", 8), **kw)


def _first_batch(dataset, size: int = 4) -> dict:
    """A P x K-like batch: the first ``size`` items (2 people x 2 tracklets when available)."""
    return torch.utils.data.default_collate([dataset[i] for i in range(size)])


# Test modules are not a package (pytest's importlib mode), so the helpers are handed out as fixtures.
@pytest.fixture
def tiny_config():
    return _tiny_config


@pytest.fixture
def make_method():
    return _make_method


@pytest.fixture
def cpu_context():
    return _cpu_context


@pytest.fixture
def first_batch():
    return _first_batch
