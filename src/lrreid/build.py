"""Config -> objects: dataset and splits, method, trainer with its hooks.

This is the only module that reads :class:`~lrreid.config.RunConfig` objects (besides each
method's ``MethodSpec.build``); models, the engine and the evaluation take plain arguments.

Example::

    cfg = load_config("configs/pri_caviar.yaml", ["train.max_iters_per_epoch=5"])
    splits = build_splits(cfg)
    method = build_method(cfg, splits)
    trainer = build_trainer(cfg, method, splits)
    trainer.train(resume=cfg.train.resume)

What a command does with these objects (refuse an existing run folder, save its config, one model
per split, evaluate and write the report) is lrreid.workflows (``train_run(cfg)`` for the above).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from lrreid.config import RunConfig, config_from_dict, apply_override, load_config
from lrreid.engine import checkpoint as ckpt_io
from lrreid.engine.distributed import DistInfo
from lrreid.engine.hooks import CheckpointHook, EvalHook, LossHistoryHook, ProgressHook, TensorBoardHook
from lrreid.engine.trainer import Trainer
from lrreid.errors import CheckpointError, ConfigError
from lrreid.methods import METHODS, Method
from lrreid.utils.logging import get_logger

log = get_logger("build")

# data.protocol -> name of the function in lrreid.data.protocols
PROTOCOLS = {
    "genuine": "genuine_lr_protocol",
    "lr_single_shot": "lr_single_shot_protocol",
    "single_shot": "lr_single_shot_protocol",
    "cross_view": "cross_view_protocol",
    "grid": "grid_protocol",
}


def build_splits(cfg: RunConfig) -> list:
    """The evaluation splits of ``cfg.data`` (list of ``EvalSplit(name, train, query, gallery)``)."""
    from lrreid.data import protocols

    data = cfg.data
    if data.protocol == "prepared" or data.prepared:
        if not data.prepared:
            raise ConfigError("data.protocol=prepared needs data.prepared (a folder written by `lrreid prepare`)")
        splits = protocols.load_prepared_splits(data.prepared)
    else:
        if data.protocol not in PROTOCOLS:
            known = ", ".join([*PROTOCOLS, "prepared"])
            raise ConfigError(f"data.protocol={data.protocol!r}: unknown protocol (known: {known})")
        from lrreid.data.datasets import build_dataset

        dataset = build_dataset(data.dataset, data.root, **data.dataset_args)
        if data.protocol == "genuine":  # GRID's genuine LR setting is its own protocol
            protocol = protocols.genuine_protocol_for(data.dataset)
        else:
            protocol = getattr(protocols, PROTOCOLS[data.protocol])
        try:
            splits = protocol(dataset, num_splits=data.num_splits, seed=cfg.seed, **data.protocol_args)
        except TypeError as exc:
            if "argument" not in str(exc):
                raise
            raise ConfigError(f"data.protocol_args {data.protocol_args}: {exc}") from None
    splits = list(splits)
    if not splits:
        raise ConfigError(f"data: protocol {data.protocol!r} produced no splits")
    return splits


def select_splits(cfg: RunConfig, splits: Sequence) -> list:
    """The splits ``eval.splits`` names (all when None)."""
    if cfg.eval.splits is None:
        return list(splits)
    bad = [i for i in cfg.eval.splits if not 0 <= i < len(splits)]
    if bad:
        raise ConfigError(f"eval.splits={cfg.eval.splits}: split {bad[0]} does not exist (there are {len(splits)})")
    return [splits[i] for i in cfg.eval.splits]


def training_records(cfg: RunConfig, splits: Sequence) -> tuple[list, int]:
    """Relabelled training records of ``data.split_for_training`` and the number of identities."""
    from lrreid.data.records import relabel

    index = cfg.data.split_for_training
    if not 0 <= index < len(splits):
        raise ConfigError(f"data.split_for_training={index}: there are only {len(splits)} splits")
    records, mapping = relabel(list(splits[index].train))
    if not records:
        raise ConfigError(f"split {index} of protocol {cfg.data.protocol!r} has no training records")
    return records, len(mapping)


def build_method(cfg: RunConfig, splits: Sequence) -> Method:
    """The method named by ``cfg.method``, built by its MethodSpec on the training split."""
    from lrreid.engine.seeding import seed_everything

    records, num_classes = training_records(cfg, splits)
    spec = METHODS.get(cfg.method)
    seed_everything(cfg.seed)  # the run seed also fixes the initial weights
    method = spec.build(cfg, records, num_classes)
    if not isinstance(method, Method):
        raise TypeError(f"MethodSpec {cfg.method!r}.build returned {type(method).__name__}, not a Method")
    return method


def build_trainer(cfg: RunConfig, method: Method, splits: Sequence = (), dist_info: DistInfo | None = None) -> Trainer:
    """A Trainer with the standard hooks (checkpoints, loss history, TensorBoard, progress, evaluation)."""
    t = cfg.train
    hooks = [CheckpointHook(every=t.checkpoint_every, keep=t.keep_checkpoints), LossHistoryHook()]
    if cfg.eval.every > 0 or cfg.eval.at_end:
        hooks.append(EvalHook(select_splits(cfg, splits), every=cfg.eval.every, at_end=cfg.eval.at_end,
                              batch_size=cfg.eval.batch_size))
    if t.tensorboard:
        hooks.append(TensorBoardHook())
    hooks.append(ProgressHook(enabled=t.progress))
    return Trainer(
        method, run_dir=t.output_dir, batch_size=t.batch_size, num_instances=t.num_instances,
        num_workers=t.num_workers, device=t.device, precision=t.precision, seed=cfg.seed,
        max_iters_per_epoch=t.max_iters_per_epoch, grad_clip=t.grad_clip, log_every=t.log_every,
        hooks=hooks, dist_info=dist_info, config=cfg.to_dict(),
    )


def trainer_from_config(cfg: RunConfig, hooks: Sequence = ()) -> Trainer:
    """Splits, method and :func:`build_trainer` of ``cfg`` in one call, with ``hooks`` registered after the
    standard ones (``trainer.train()`` returns the trained method)."""
    splits = build_splits(cfg)
    trainer = build_trainer(cfg, build_method(cfg, splits), splits)
    for hook in hooks:
        trainer.register_hook(hook)
    return trainer


def config_from_run(run_or_checkpoint: str | Path, overrides: Sequence[str] = ()) -> tuple[RunConfig, Path]:
    """The config a run was trained with (from the checkpoint's JSON) and the checkpoint stem.

    Accepts a run folder, its ``checkpoints`` folder or one checkpoint (``.json``/``.safetensors``/stem).
    """
    from lrreid.engine.each_split import is_each_split_run, sub_runs

    if is_each_split_run(run_or_checkpoint):  # lrreid train --each-split: no model of its own
        subs = sub_runs(run_or_checkpoint)
        example = f"e.g. {next(iter(subs.values()))}" if subs else "none trained yet"
        raise CheckpointError(
            f"{run_or_checkpoint}: a one-model-per-split run ({len(subs)} sub-runs); name one of its models, {example}")
    stem = ckpt_io.resolve_checkpoint(run_or_checkpoint)
    import json

    try:
        meta = json.loads(stem.with_suffix(".json").read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{stem}.json: unreadable checkpoint metadata ({exc})") from None
    raw = meta.get("config")
    if not raw:
        saved = Path(run_or_checkpoint) / "config.yaml"
        if saved.is_file():
            return load_config(saved, overrides), stem
        raise CheckpointError(f"{stem}.json holds no run config (and no config.yaml beside it)")
    raw = dict(raw)
    for item in overrides:
        apply_override(raw, item)
    return config_from_dict(raw), stem


def build_trained_method(cfg: RunConfig, checkpoint: "ckpt_io.Checkpoint") -> Method:
    """The method of ``cfg`` with ``checkpoint``'s weights, built by its MethodSpec with no dataset.

    A method whose spec has no ``build_trained`` is built as for training, from ``cfg.data``.
    """
    build = getattr(METHODS.get(cfg.method), "build_trained", None)
    method = build(cfg, checkpoint) if build is not None else build_method(cfg, build_splits(cfg))
    ckpt_io.load_into(checkpoint, method)
    return method


def load_trained(run_or_checkpoint: str | Path, overrides: Sequence[str] = ()):
    """A trained run from its own folder: ``(cfg, method, checkpoint)``, weights loaded, no dataset read.

    The config comes from the checkpoint, the numbers its builder read off the training data from
    the checkpoint's ``derived`` section, the weights from the checkpoint.
    """
    cfg, stem = config_from_run(run_or_checkpoint, overrides)
    ckpt = ckpt_io.load_checkpoint(stem)
    return cfg, build_trained_method(cfg, ckpt), ckpt


def load_trained_method(run_or_checkpoint: str | Path, overrides: Sequence[str] = ()):
    """A trained run and its evaluation data: ``(cfg, splits, method, checkpoint)``.

    The method loads from the run alone (:func:`load_trained`); the splits are built from
    ``cfg.data`` (override ``data.root=...`` or ``data.prepared=...`` where the data is now), and
    the images of the training split (``data.split_for_training``) are the ones the evaluation
    treats as seen in training.
    """
    cfg, method, ckpt = load_trained(run_or_checkpoint, overrides)
    splits = build_splits(cfg)
    records, _ = training_records(cfg, splits)
    method.train_paths = frozenset(str(r.path) for r in records)
    return cfg, splits, method, ckpt


def evaluation_context(cfg: RunConfig, run_dir: str | Path | None = None):
    """The EpochContext ``method.evaluate`` gets outside training (device from train.device)."""
    import numpy as np
    import torch

    from lrreid.engine.hooks import progress_factory
    from lrreid.methods.base import EpochContext
    from lrreid.utils.device import Precision, resolve_device

    device = resolve_device(cfg.train.device, "train.device")
    return EpochContext(
        device=device, precision=Precision(device, "fp32" if cfg.train.precision == "fp16" and device.type != "cuda" else cfg.train.precision),
        generator=torch.Generator().manual_seed(cfg.seed), rng=np.random.default_rng(cfg.seed),
        progress=progress_factory(True), logger=log, run_dir=Path(run_dir) if run_dir else None,
        batch_size=cfg.eval.batch_size, num_workers=cfg.train.num_workers,
    )


def load_run(run_or_checkpoint: str | Path, overrides: Sequence[str] = ()) -> Method:
    """The trained method of a run folder or checkpoint, weights loaded, in eval mode (on CPU).

    Only the run's own files are read (config and checkpoint): a run folder copied to another
    machine loads without its dataset or the pretrained weights it started from.

    Example::

        method = load_run("runs/pri-caviar")
        features = method.embed(images)
    """
    return load_trained(run_or_checkpoint, overrides)[1].eval()
