"""Checkpoints without pickle: tensors in ``.safetensors``, everything else in a ``.json`` beside it.

A checkpoint ``<dir>/<stem>`` is two files, both written atomically, the JSON last:

* ``<stem>.safetensors``: ``model/<key>`` (the method's state_dict), ``extra/<key>``
  (``method.extra_state()``, e.g. PRI's soft-label table), ``optim/...`` / ``sched/...`` / ``scaler/...``
  (tensor leaves of the optimizer, scheduler and grad-scaler state), ``rng/torch`` and ``rng/cuda/<i>``.
* ``<stem>.json``: format version, lrreid version, method name, signature (parameter shapes and
  ``method.signature()``, e.g. the SR scale set), the numbers the builder derived from the training
  data (``derived``: ``method.derived_settings()``, e.g. the number of classes, so that the run loads
  with no dataset), training position (phase, epoch, iteration),
  the non-tensor parts of optimizer/scheduler state with ``{"__tensor__": key}`` placeholders,
  numpy and python RNG states, the run config, and the size + SHA-256 of the tensor file.

A tensor file without its JSON is an interrupted write and is ignored.  ``<dir>/last`` names the
newest complete checkpoint; it is rewritten (atomically) only after both files exist.  Resuming
(:func:`load_for_resume`) passes over a newest checkpoint that does not load, saying so.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from lrreid.errors import CheckpointError
from lrreid.utils.atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from lrreid.utils.logging import get_logger

log = get_logger("engine.checkpoint")

FORMAT_VERSION = 1
LAST_POINTER = "last"


@dataclass
class TrainPosition:
    """Where training stands: ``epochs_done`` completed epochs of phase ``phase_index``."""

    phase_index: int = 0
    phase_name: str = ""
    epochs_done: int = 0
    global_epoch: int = 0  # epochs completed over all phases
    iteration: int = 0  # optimizer steps over all phases


@dataclass
class Checkpoint:
    """A loaded checkpoint: tensors by key and the JSON metadata."""

    path: Path  # the stem (without suffix)
    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    position: TrainPosition = field(default_factory=TrainPosition)

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix/`` with the prefix removed."""
        p = prefix + "/"
        return {k[len(p):]: v for k, v in self.tensors.items() if k.startswith(p)}

    @property
    def model_state(self) -> dict[str, torch.Tensor]:
        return self.section("model")

    @property
    def extra_state(self) -> dict[str, torch.Tensor]:
        return self.section("extra")


# ------------------------------------------------------------------------------------------------
def model_signature(method: torch.nn.Module) -> dict[str, Any]:
    """What a checkpoint must match to load into ``method``: its name, parameter shapes, signature()."""
    shapes = {k: list(v.shape) for k, v in method.state_dict().items()}
    extra = method.signature() if hasattr(method, "signature") else {}
    return {"method": getattr(method, "name", type(method).__name__), "shapes": shapes, "extra": extra}


def save_checkpoint(
    directory: str | os.PathLike,
    stem: str,
    method: torch.nn.Module,
    *,
    position: TrainPosition,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler=None,
    scaler=None,
    config: dict | None = None,
    update_last: bool = True,
) -> Path:
    """Write ``<directory>/<stem>.safetensors`` then ``.json``, then point ``last`` at it.

    Example::

        save_checkpoint(run_dir / "checkpoints", "p0-pretrain-e003", method, position=pos, optimizer=opt)
    """
    from lrreid import __version__

    directory = Path(directory)
    tensors: dict[str, torch.Tensor] = {}
    for key, value in method.state_dict().items():
        tensors[f"model/{key}"] = value
    extra = method.extra_state() if hasattr(method, "extra_state") else {}
    for key, value in extra.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{type(method).__name__}.extra_state()[{key!r}] is {type(value).__name__}, not a tensor")
        tensors[f"extra/{key}"] = value
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "lrreid_version": __version__,
        "signature": model_signature(method),
        "position": position.__dict__.copy(),
        "config": config,
        "derived": method.derived_settings() if hasattr(method, "derived_settings") else {},
        "extra_keys": sorted(extra),
    }
    if optimizer is not None:
        meta["optimizer"] = _encode(optimizer.state_dict(), "optim", tensors)
    if scheduler is not None:
        meta["scheduler"] = _encode(scheduler.state_dict(), "sched", tensors)
    if scaler is not None and scaler.is_enabled():
        meta["scaler"] = _encode(scaler.state_dict(), "scaler", tensors)
    tensors["rng/torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng/cuda/{i}"] = state
    meta["rng"] = {"python": _encode(random.getstate(), "", {}), "numpy": _numpy_state()}

    # Contiguous CPU copies: safetensors refuses shared storage (tied weights) and views.
    blob = st_save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})
    meta["tensor_file"] = {"name": f"{stem}.safetensors", "bytes": len(blob), "sha256": hashlib.sha256(blob).hexdigest()}
    atomic_write_bytes(directory / f"{stem}.safetensors", blob)
    atomic_write_json(directory / f"{stem}.json", meta)  # last: a checkpoint is complete once this exists
    if update_last:
        atomic_write_text(directory / LAST_POINTER, stem + "\n")
    return directory / stem


def complete_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Stems of the checkpoints in ``directory`` with both files and readable metadata, newest first
    (by training position; ``last`` is not consulted)."""
    directory = Path(directory)
    found = []
    for js in directory.glob("*.json"):
        if not js.with_suffix(".safetensors").is_file():
            continue
        try:
            pos = json.loads(js.read_text())["position"]
            found.append(((pos["global_epoch"], pos["iteration"]), directory / js.stem))
        except (ValueError, KeyError, TypeError, OSError):
            continue
    return [stem for _, stem in sorted(found, key=lambda item: item[0], reverse=True)]


def find_last(directory: str | os.PathLike) -> Path | None:
    """Stem of the newest complete checkpoint in ``directory`` (via ``last``), or None if there is none.

    When ``last`` names files that are gone (deleted by hand), the newest complete checkpoint by
    training position is used, with a warning: the run would otherwise quietly go back in time.
    """
    directory = Path(directory)
    pointer = directory / LAST_POINTER
    named = pointer.read_text().strip() if pointer.is_file() else ""
    if named and (directory / f"{named}.json").is_file() and (directory / f"{named}.safetensors").is_file():
        return directory / named
    complete = complete_checkpoints(directory)
    best = complete[0] if complete else None
    if named:
        instead = f"using {best.name}, the newest complete checkpoint" if best else "no complete checkpoint is left"
        log.warning("%s: 'last' names %s, whose files are missing; %s", pointer, named, instead)
    return best


def load_for_resume(directory: str | os.PathLike) -> Checkpoint | None:
    """The newest checkpoint of ``directory`` that loads, or None if it holds none.

    A newest checkpoint that is truncated or corrupt (a full disk, a copy cut short) is passed over,
    with a warning naming it and the one resumed from instead; only when none loads is that an error.
    """
    first = find_last(directory)
    if first is None:
        return None
    candidates = [first] + [stem for stem in complete_checkpoints(directory) if stem != first]
    errors = []
    for stem in candidates:
        try:
            ckpt = load_checkpoint(stem)
        except CheckpointError as exc:
            log.warning("cannot resume from %s: %s", stem.name, exc)
            errors.append(exc)
            continue
        if errors:
            log.warning("resuming from %s instead, the newest checkpoint that loads", stem.name)
        return ckpt
    raise CheckpointError(f"{directory}: no checkpoint loads ({len(errors)} tried; the newest: {errors[0]})")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """Accept a run folder, its ``checkpoints`` folder, a ``.json``/``.safetensors`` file or a stem."""
    p = Path(path)
    if p.is_dir():
        for folder in (p / "checkpoints", p):
            if folder.is_dir():
                found = find_last(folder)
                if found is not None:
                    return found
        raise CheckpointError(f"{p}: no complete checkpoint found (expected checkpoints/last or a <name>.json + .safetensors pair)")
    if p.is_file() and p.suffix not in (".json", ".safetensors"):
        raise CheckpointError(not_a_checkpoint(p))
    if p.suffix in (".json", ".safetensors"):
        p = p.with_suffix("")
    if not p.with_suffix(".json").is_file():
        if p.with_suffix(".safetensors").is_file():
            raise CheckpointError(f"{p}.json missing: the checkpoint write was interrupted (use the previous one)")
        raise CheckpointError(f"checkpoint '{path}' not found")
    return p


def not_a_checkpoint(path: Path) -> str:
    """The error for an existing file that is neither a run nor a checkpoint: what it looks like, what was expected."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    size = path.stat().st_size
    if not head:
        kind = "empty file"
    elif head.startswith(b"PK\x03\x04"):
        kind = "zip archive (torch.save format)"
    elif head[:1] == b"\x80":
        kind = "pickle file (old torch.save format)"
    elif head.lstrip()[:1] == b"<":
        kind = "XML/HTML file"
    else:
        kind = f"{size}-byte file"
    return (f"{path}: a {kind}, not an lrreid run, checkpoint or re-ID weight file (expected a run folder with "
            f"checkpoints/, a checkpoint's .json beside its .safetensors, an OpenVINO IR .xml or a torchreid OSNet .pth)")


def load_checkpoint(path: str | os.PathLike, verify: bool = True) -> Checkpoint:
    """Read a checkpoint (see :func:`resolve_checkpoint` for accepted paths); no state is applied.

    Raises CheckpointError for a missing, truncated or corrupt checkpoint.
    """
    stem = resolve_checkpoint(path)
    json_path, tensor_path = stem.with_suffix(".json"), stem.with_suffix(".safetensors")
    try:
        meta = json.loads(json_path.read_text())
        if not isinstance(meta, dict) or "signature" not in meta:
            raise ValueError("not an lrreid checkpoint")
    except (ValueError, OSError) as exc:
        raise CheckpointError(f"{json_path}: unreadable checkpoint metadata ({exc})") from None
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(f"{json_path}: checkpoint format {meta['format_version']} is newer than this lrreid reads ({FORMAT_VERSION})")
    if not tensor_path.is_file():
        raise CheckpointError(f"{tensor_path} missing (checkpoint metadata without its tensors)")
    blob = tensor_path.read_bytes()
    expected = meta.get("tensor_file", {})
    if verify and "bytes" in expected and len(blob) != expected["bytes"]:
        raise CheckpointError(f"{tensor_path}: truncated or replaced ({len(blob)} bytes, expected {expected['bytes']})")
    if verify and "sha256" in expected and hashlib.sha256(blob).hexdigest() != expected["sha256"]:
        raise CheckpointError(f"{tensor_path}: corrupt (SHA-256 differs from the one recorded in {json_path.name})")
    try:
        tensors = st_load(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{tensor_path}: not a readable safetensors file ({str(exc).splitlines()[0]})") from None
    pos = TrainPosition(**meta.get("position", {}))
    return Checkpoint(stem, tensors, meta, pos)


def check_compatible(ckpt: Checkpoint, method: torch.nn.Module) -> None:
    """Raise CheckpointError (one line) if ``ckpt`` was written by another method, architecture or scale set."""
    theirs = ckpt.meta["signature"]
    ours = model_signature(method)
    where = ckpt.path.with_suffix(".json")
    if theirs.get("method") != ours["method"]:
        raise CheckpointError(f"{where}: checkpoint of method {theirs.get('method')!r}, this run uses {ours['method']!r}")
    for key in sorted(set(theirs.get("extra", {})) | set(ours["extra"])):
        a, b = theirs.get("extra", {}).get(key), ours["extra"].get(key)
        if _jsonish(a) != _jsonish(b):
            raise CheckpointError(f"{where}: checkpoint has {key} {a!r}, this model has {key} {b!r}")
    shapes_ckpt, shapes_model = theirs.get("shapes", {}), ours["shapes"]
    missing = [k for k in shapes_model if k not in shapes_ckpt]
    unexpected = [k for k in shapes_ckpt if k not in shapes_model]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} model tensor(s) missing (e.g. {missing[0]!r})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]!r})")
        raise CheckpointError(f"{where}: different architecture: {', '.join(parts)}")
    for key, shape in shapes_model.items():
        if list(shapes_ckpt[key]) != list(shape):
            raise CheckpointError(f"{where}: different architecture: {key!r} has shape {shapes_ckpt[key]} in the checkpoint, {shape} in the model")


def load_into(ckpt: Checkpoint, method: torch.nn.Module) -> None:
    """Check compatibility, then load the weights and the extra state into ``method``."""
    check_compatible(ckpt, method)
    method.load_state_dict(ckpt.model_state, strict=True)
    if hasattr(method, "load_extra_state"):
        method.load_extra_state(ckpt.extra_state)


def restore_optimizer(ckpt: Checkpoint, optimizer, scheduler=None, scaler=None) -> None:
    if "optimizer" in ckpt.meta:
        optimizer.load_state_dict(_decode(ckpt.meta["optimizer"], ckpt.tensors))
    if scheduler is not None and "scheduler" in ckpt.meta:
        scheduler.load_state_dict(_decode(ckpt.meta["scheduler"], ckpt.tensors))
    if scaler is not None and "scaler" in ckpt.meta:
        scaler.load_state_dict(_decode(ckpt.meta["scaler"], ckpt.tensors))


def restore_rng(ckpt: Checkpoint) -> None:
    if "rng/torch" in ckpt.tensors:
        torch.set_rng_state(ckpt.tensors["rng/torch"])
    cuda = sorted(k for k in ckpt.tensors if k.startswith("rng/cuda/"))
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([ckpt.tensors[k] for k in cuda])
    rng = ckpt.meta.get("rng", {})
    if "python" in rng:
        random.setstate(_decode(rng["python"], {}))
    if "numpy" in rng:
        n = rng["numpy"]
        np.random.set_state((n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))


# ------------------------------------------------------------------------------------------------
def _numpy_state() -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"kind": kind, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}


def _encode(obj, prefix: str, tensors: dict[str, torch.Tensor], counter=None):
    """JSON-able copy of a state dict; tensor leaves go to ``tensors`` under ``prefix/N``."""
    counter = counter if counter is not None else itertools.count()
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}/{next(counter)}"
        tensors[key] = obj
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and "__tensor__" not in obj:
            return {k: _encode(v, prefix, tensors, counter) for k, v in obj.items()}
        return {"__items__": [[_encode(k, prefix, tensors, counter), _encode(v, prefix, tensors, counter)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, prefix, tensors, counter) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, prefix, tensors, counter) for v in obj]
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (state must be tensors, numbers, strings, lists, dicts)")


def _decode(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(_decode(v, tensors) for v in obj["__tuple__"])
        if "__items__" in obj:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in obj["__items__"]}
        return {k: _decode(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    return obj


def _jsonish(value):
    """Compare signature values as they round-trip through JSON (tuples become lists)."""
    return json.loads(json.dumps(value))
