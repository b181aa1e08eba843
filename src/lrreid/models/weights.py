"""Weight files: reading them safely, naming them, and loading them into lrreid's models.

Three steps, each one function:

1. ``resolve_weights(spec)`` turns the one way weights are named everywhere (config files and CLI)
   into a local file: either a path, or a hub name ``"timm:resnet50.a1_in1k"`` /
   ``"open_clip:ViT-B-16/openai"`` that timm / open_clip download (or find in their cache).
2. ``read_state_dict(path)`` reads ``{name: tensor}`` from any of the formats weights are published
   in, never unpickling arbitrary Python objects.
3. ``load_weights(model, source, key_map=...)`` renames the keys with an *importer* (the published
   layout -> lrreid's layout), checks names and shapes, and loads; every disagreement is reported
   in one line.

Importers are registered by name in ``IMPORTERS``; ``docs/models.md`` lists them.
"""
from __future__ import annotations

import os
import pickle
import re
import socket
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from lrreid.errors import CheckpointError, ConfigError
from lrreid.registry import Registry
from lrreid.utils.logging import get_logger

log = get_logger("weights")

StateDict = dict[str, torch.Tensor]
KeyMap = Callable[[StateDict], StateDict]

# Entries that wrap the real state dict in published checkpoints, in the order they are preferred.
# BasicSR-style files (SwinIR) may hold both ``params`` and ``params_ema``; the EMA copy is what
# their authors evaluate and release as the better model, so it wins unless ``key=`` says otherwise.
WRAPPER_KEYS = ("params_ema", "params", "state_dict", "model_state_dict", "model")


# --------------------------------------------------------------------------- reading files


def read_state_dict(path: str | os.PathLike, *, key: str | None = None) -> StateDict:
    """Read ``{name: tensor}`` (on the CPU) from a weight file.

    Accepted: a plain ``torch.save`` state dict (zip or legacy format); the same wrapped in a dict
    under ``params_ema``, ``params``, ``state_dict``, ``model_state_dict`` or ``model`` (searched
    in that order, nested wrappers too; ``key=`` picks one explicitly); ``.safetensors`` files;
    TorchScript archives such as OpenAI's CLIP ``ViT-B-16.pt`` (their ``state_dict()``); OpenVINO
    IR ``.xml`` files of the networks :mod:`lrreid.models.openvino_ir` reads (their constants).  A
    ``module.`` prefix on every key (DistributedDataParallel) is removed.

    ``torch.load`` runs with ``weights_only=True``: a file that stores Python objects besides
    tensors is refused with a :class:`CheckpointError` that says how to re-save it, because
    unpickling can run arbitrary code.

    Example::

        sd = read_state_dict("../shared/weights/carn_m.pth")
        sd["entry.weight"].shape      # torch.Size([64, 3, 3, 3])
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p}: no such weight file")
    if not p.is_file():
        raise CheckpointError(f"{p}: is a directory, not a weight file")
    if p.stat().st_size == 0:
        raise CheckpointError(f"{p}: empty file, not a checkpoint")
    if p.suffix.lower() == ".xml":  # OpenVINO IR: the graph's constants, named as lrreid's module
        from lrreid.models.openvino_ir import read_openvino_ir

        return read_openvino_ir(p).state
    if p.suffix == ".safetensors":
        obj = _read_safetensors(p)
    elif _is_torchscript_archive(p):
        obj = _read_torchscript(p)
    else:
        obj = _read_torch_file(p)
    state = _unwrap(obj, p, key)
    return _strip_common_prefix(state, "module.")


def _read_safetensors(p: Path) -> StateDict:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(p), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{p}: not a readable safetensors file ({_first_line(exc)})") from None


def _is_torchscript_archive(p: Path) -> bool:
    # torch.jit.save writes code/ and constants.pkl beside data.pkl; torch.save never does.
    if not zipfile.is_zipfile(p):
        return False
    try:
        with zipfile.ZipFile(p) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(n.endswith("/constants.pkl") or "/code/" in n for n in names)


def _read_torchscript(p: Path) -> StateDict:
    # TorchScript code is a restricted language (no arbitrary Python), so loading it is safe.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated, the archives remain
            module = torch.jit.load(str(p), map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged archive
        raise CheckpointError(f"{p}: damaged TorchScript archive ({_first_line(exc)})") from None
    return dict(module.state_dict())


def _read_torch_file(p: Path):
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic == b"PK\x03\x04":  # torch.save's zip format
        if not zipfile.is_zipfile(p):
            raise CheckpointError(f"{p}: truncated or damaged checkpoint (zip archive without its directory)")
    elif magic[:1] != b"\x80":  # the legacy format is a pickle, which starts with PROTO (0x80)
        raise CheckpointError(f"{p}: not a PyTorch or safetensors checkpoint")
    try:
        with torch.serialization.safe_globals(_numpy_scalar_globals()):
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "Weights only load failed" in msg:
            found = re.search(r"GLOBAL ([\w.]+)", msg)
            what = f" ({found.group(1)})" if found else ""
            raise CheckpointError(
                f"{p}: stores Python objects besides tensors{what}, which only full unpickling "
                "could read, and unpickling can run arbitrary code; if you trust the file, re-save "
                "its tensors with torch.save(obj['state_dict'] or model.state_dict(), 'clean.pt')"
            ) from None
        raise CheckpointError(f"{p}: not a PyTorch checkpoint ({_first_line(exc)})") from None
    except (RuntimeError, EOFError) as exc:
        msg = str(exc)
        if "central directory" in msg or "EOF" in msg or "corrupted" in msg or isinstance(exc, EOFError):
            raise CheckpointError(f"{p}: truncated or damaged checkpoint ({_first_line(exc)})") from None
        raise CheckpointError(f"{p}: cannot read checkpoint ({_first_line(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - garbage input makes the unpickler raise anything
        raise CheckpointError(f"{p}: not a PyTorch checkpoint ({type(exc).__name__}: {_first_line(exc)})") from None


def _numpy_scalar_globals() -> list:
    """NumPy scalars and dtypes, which training scripts often save beside the weights (a best
    rank-1 as ``np.float64``); rebuilding them runs no code, so they are allowed."""
    import numpy as np

    try:
        from numpy._core.multiarray import scalar
    except ImportError:  # numpy < 2
        from numpy.core.multiarray import scalar
    kinds = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
    return [scalar, np.dtype, *{type(np.dtype(k)) for k in kinds}]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _is_state_dict(obj) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unwrap(obj, p: Path, key: str | None) -> StateDict:
    if key is not None:
        if not isinstance(obj, Mapping) or key not in obj:
            top = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
            raise CheckpointError(f"{p}: no entry {key!r} (top level: {top})")
        obj = obj[key]
    for _ in range(4):  # wrappers nest at most a few levels ({'model': {'state_dict': ...}})
        if _is_state_dict(obj):
            return dict(obj)
        if not isinstance(obj, Mapping):
            break
        wrapper = next((k for k in WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if wrapper is None:
            tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
            if tensors:  # a state dict with a few metadata entries mixed in
                dropped = [k for k in obj if k not in tensors]
                log.info("%s: ignoring non-tensor entries %s", p, ", ".join(map(str, dropped[:5])))
                return tensors
            break
        others = [k for k in WRAPPER_KEYS if k != wrapper and isinstance(obj.get(k), Mapping)]
        if others:
            log.info("%s: using the %r weights (also present: %s; pass key= to choose)", p, wrapper, ", ".join(others))
        obj = obj[wrapper]
    top = ", ".join(map(str, list(obj)[:8])) if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(
        f"{p}: no state dict found (top level: {top}; expected tensors or one of {', '.join(WRAPPER_KEYS)})"
    )


def _strip_common_prefix(state: StateDict, prefix: str) -> StateDict:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


# --------------------------------------------------------------------------- naming weights

def resolve_weights(spec: str | os.PathLike) -> Path:
    """The local file named by ``spec``: a path, or a hub name fetched by its library.

    - ``"path/to/file.pth"``: must exist;
    - ``"timm:<model>[.<tag>]"`` (e.g. ``"timm:resnet50.a1_in1k"``): timm's published weights,
      taken from the Hugging Face cache or downloaded;
    - ``"open_clip:<model>/<tag>"`` (e.g. ``"open_clip:ViT-B-16/openai"``): open_clip's weights.

    Without network access a hub name fails at once (no retry loop) with a
    :class:`CheckpointError` that says to download the file elsewhere and pass its path.

    Example::

        resolve_weights("../shared/weights/carn_m.pth")   # PosixPath('../shared/weights/carn_m.pth')
        resolve_weights("timm:resnet50.a1_in1k")          # ~/.cache/huggingface/.../model.safetensors
    """
    text = os.fspath(spec)
    if text.startswith("timm:"):
        return _resolve_timm(text[len("timm:"):], text)
    if text.startswith("open_clip:"):
        return _resolve_open_clip(text[len("open_clip:"):], text)
    p = Path(text).expanduser()
    if not p.exists():
        raise CheckpointError(
            f"{p}: no such weight file (name weights by a local path, or by a hub name such as "
            "timm:resnet50.a1_in1k or open_clip:ViT-B-16/openai)"
        )
    return p


def _hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or os.environ.get("LRREID_OFFLINE"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_error(spec: str) -> CheckpointError:
    return CheckpointError(
        f"{spec}: not in the local cache and the model hub cannot be reached (no network); "
        "download the file on a machine with access and pass its local path instead"
    )


def _from_hf(repo_id: str, filenames: tuple[str, ...], spec: str) -> Path:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    for name in filenames:
        cached = try_to_load_from_cache(repo_id, name)
        if isinstance(cached, str):
            return Path(cached)
    if not _hub_reachable():
        raise _offline_error(spec)
    last: Exception | None = None
    for name in filenames:
        try:
            return Path(hf_hub_download(repo_id, name))
        except Exception as exc:  # noqa: BLE001 - hub errors come in many types
            last = exc
    raise CheckpointError(f"{spec}: download from {repo_id} failed ({_first_line(last)})")


def _resolve_timm(name: str, spec: str) -> Path:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        raise ConfigError(f"{spec}: timm has no pretrained weights named {name!r}")
    if cfg.hf_hub_id:
        names = (cfg.hf_hub_filename,) if cfg.hf_hub_filename else ("model.safetensors", "pytorch_model.bin")
        return _from_hf(cfg.hf_hub_id, names, spec)
    if cfg.url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(cfg.url)
        if cached.exists():
            return cached
        if not _hub_reachable(host=re.sub(r"^https?://([^/]+)/.*$", r"\1", cfg.url)):
            raise _offline_error(spec)
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(cfg.url, str(cached))
        return cached
    raise CheckpointError(f"{spec}: timm lists no download location for these weights")


def _resolve_open_clip(name: str, spec: str) -> Path:
    import open_clip.pretrained as oc

    model, _, tag = name.partition("/")
    if not tag:
        raise ConfigError(f"{spec}: expected open_clip:<model>/<tag>, e.g. open_clip:ViT-B-16/openai")
    cfg = oc.get_pretrained_cfg(model, tag)
    if not cfg:
        raise ConfigError(f"{spec}: open_clip has no weights {tag!r} for model {model!r}")
    if cfg.get("hf_hub"):
        # "org/repo/" names a repository, "org/repo/file.bin" one file in it
        org, repo, filename = (cfg["hf_hub"].split("/", 2) + ["", ""])[:3]
        names = (filename,) if filename else ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
        return _from_hf(f"{org}/{repo}", names, spec)
    if not _hub_reachable(host=re.sub(r"^https?://([^/]+)/.*$", r"\1", cfg.get("url", ""))):
        raise _offline_error(spec)
    return Path(oc.download_pretrained(cfg))


# --------------------------------------------------------------------------- importers

IMPORTERS: Registry[KeyMap] = Registry("weight importer")


def _require(state: StateDict, marker: str, layout: str) -> None:
    if marker not in state:
        sample = ", ".join(list(state)[:4])
        raise CheckpointError(f"not a {layout} file: it has no key {marker!r} (it has {sample}, ...)")


@IMPORTERS.register("identity")
def identity_importer(state: StateDict) -> StateDict:
    """Keys already in the model's layout."""
    return dict(state)


@IMPORTERS.register("torchvision_resnet")
def torchvision_resnet_importer(state: StateDict) -> StateDict:
    """torchvision ``resnet18/34/50/101`` ImageNet files -> timm ``resnet*``.

    The two layouts coincide key for key (``conv1``, ``bn1``, ``layer{1-4}.{i}.conv{1-3}/bn{1-3}``,
    ``downsample.0/1``, ``fc``); this importer only checks that the file is one.
    """
    _require(state, "layer1.0.conv1.weight", "torchvision/timm ResNet")
    return dict(state)


@IMPORTERS.register("torchreid")
def torchreid_importer(state: StateDict) -> StateDict:
    """torchreid model-zoo OSNet / OSNet-AIN files: the names of :mod:`lrreid.models.reid.osnet` one to one."""
    _require(state, "conv1.conv.weight", "torchreid OSNet")
    return dict(state)


@IMPORTERS.register("timm")
def timm_importer(state: StateDict) -> StateDict:
    """Files written by timm (``model.state_dict()`` of a timm model): already in our layout."""
    return dict(state)


# MobileNetV2 (Sandler et al. 2018, Table 2): inverted-residual blocks per stage, width 1.0.
_MOBILENETV2_STAGE_REPEATS = (1, 2, 3, 4, 3, 3, 1)


@IMPORTERS.register("mobilenetv2_port")
def mobilenetv2_port_importer(state: StateDict) -> StateDict:
    """The original PyTorch port's MobileNetV2 (``features.N.conv.K.*``) -> timm ``mobilenetv2_100``.

    ``features.0`` is the stem (conv 3x3 + BN), ``features.1..17`` the inverted-residual blocks in
    order, ``features.18`` the final 1x1 conv + BN.  Block 1 has no expansion (depthwise conv, BN,
    pointwise conv, BN); the others are expand 1x1 (conv.0/1), depthwise 3x3 (conv.3/4) and project
    1x1 (conv.6/7).  timm groups the blocks by stage: ``blocks.<stage>.<i>``.
    """
    _require(state, "features.1.conv.0.weight", "MobileNetV2 (features.N.conv.K) port")
    where: dict[int, str] = {}
    n = 1
    for stage, repeats in enumerate(_MOBILENETV2_STAGE_REPEATS):
        for i in range(repeats):
            where[n] = f"blocks.{stage}.{i}"
            n += 1
    head = n  # 18
    first_block = {"0": "conv_dw", "1": "bn1", "3": "conv_pw", "4": "bn2"}
    inverted = {"0": "conv_pw", "1": "bn1", "3": "conv_dw", "4": "bn2", "6": "conv_pwl", "7": "bn3"}
    out: StateDict = {}
    for key, value in state.items():
        m = re.fullmatch(r"features\.(\d+)\.(?:conv\.)?(\d+)\.(\w+)", key)
        if m is None:
            if key.startswith("classifier."):  # the ImageNet classifier, when a file has one
                out[key] = value
                continue
            raise CheckpointError(f"unexpected key {key!r} for a MobileNetV2 (features.N.conv.K) port")
        idx, layer, leaf = int(m.group(1)), m.group(2), m.group(3)
        if idx == 0:
            name = {"0": "conv_stem", "1": "bn1"}[layer]
        elif idx == head:
            name = {"0": "conv_head", "1": "bn2"}[layer]
        elif idx in where:
            table = first_block if idx == 1 else inverted
            if layer not in table:
                raise CheckpointError(f"unexpected layer {key!r} in a MobileNetV2 block")
            name = f"{where[idx]}.{table[layer]}"
        else:
            raise CheckpointError(f"{key!r}: MobileNetV2 width 1.0 has features.0..{head}, not {idx}")
        out[f"{name}.{leaf}"] = value
    return out


@IMPORTERS.register("metasr_release")
def metasr_release_importer(state: StateDict) -> StateDict:
    """Meta-SR-Pytorch's ``model_1000.pt`` (MetaRDN): the names match ``metasr_rdn`` one to one.

    A file saved from the training wrapper instead of the network carries a ``model.`` prefix,
    which is removed.
    """
    state = _strip_common_prefix(state, "model.")
    _require(state, "P2W.meta_block.0.weight", "Meta-SR (MetaRDN) release")
    return dict(state)


@IMPORTERS.register("swinir_release")
def swinir_release_importer(state: StateDict) -> StateDict:
    """Official SwinIR releases (``{'params': ...}``, unwrapped by :func:`read_state_dict`).

    Names, the ``relative_position_index`` buffers and the ``attn_mask`` buffers (computed for the
    64x64 training patches) match :class:`~lrreid.models.sr.swinir.SwinIR` one to one.
    """
    _require(state, "conv_first.weight", "SwinIR release")
    return dict(state)


@IMPORTERS.register("carn_release")
def carn_release_importer(state: StateDict) -> StateDict:
    """The CARN authors' ``carn_m.pth`` (nmhkahn/CARN-pytorch): names match ``carn_m`` one to one."""
    _require(state, "entry.weight", "CARN release")
    return dict(state)


def guess_importer(state: StateDict) -> str:
    """Name of the importer for a file whose layout was not named, from its keys.

    >>> guess_importer({"features.1.conv.0.weight": torch.zeros(1)})
    'mobilenetv2_port'
    """
    keys = state.keys()
    if "features.1.conv.0.weight" in keys:
        return "mobilenetv2_port"
    if "P2W.meta_block.0.weight" in keys or "model.P2W.meta_block.0.weight" in keys:
        return "metasr_release"
    return "identity"


# --------------------------------------------------------------------------- loading


@dataclass
class LoadReport:
    """What :func:`load_weights` did: which keys it loaded and which it skipped, and why."""

    source: str
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # in the model, absent from the file
    unexpected: list[str] = field(default_factory=list)  # in the file, unknown to the model
    mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # key, file, model

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    @property
    def skipped(self) -> list[str]:
        """Keys of the file that were not loaded."""
        return self.unexpected + [k for k, _, _ in self.mismatched]

    def summary(self) -> str:
        """One line, e.g. ``"3 missing keys (head.weight, ...), 1 shape mismatch (conv1.weight: file
        [64,3,7,7] vs model [32,3,7,7])"``."""
        parts = []
        if self.missing:
            parts.append(f"{_count(len(self.missing), 'missing key')} ({_first(self.missing)})")
        if self.unexpected:
            parts.append(f"{_count(len(self.unexpected), 'unexpected key')} ({_first(self.unexpected)})")
        if self.mismatched:
            shown = [f"{k}: file {_shape(a)} vs model {_shape(b)}" for k, a, b in self.mismatched[:2]]
            more = ", ..." if len(self.mismatched) > 2 else ""
            parts.append(f"{_count(len(self.mismatched), 'shape mismatch', 'shape mismatches')} ({', '.join(shown)}{more})")
        return ", ".join(parts) if parts else f"all {len(self.loaded)} tensors loaded"


def _count(n: int, singular: str, plural: str | None = None) -> str:
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def _first(keys: list[str], n: int = 3) -> str:
    return ", ".join(keys[:n]) + (", ..." if len(keys) > n else "")


def _shape(s: tuple[int, ...]) -> str:
    return "[" + ",".join(map(str, s)) + "]"


def _importer(key_map: KeyMap | str | None) -> tuple[KeyMap, str]:
    if key_map is None:
        return identity_importer, ""
    if isinstance(key_map, str):
        return IMPORTERS.get(key_map), key_map
    return key_map, getattr(key_map, "__name__", "key_map")


def load_weights(
    model: nn.Module,
    source: str | os.PathLike | Mapping[str, torch.Tensor],
    *,
    strict: bool = True,
    key_map: KeyMap | str | None = None,
    label: str | None = None,
) -> LoadReport:
    """Load weights into ``model`` (in place) and say what was loaded.

    ``source`` is a path (read with :func:`read_state_dict`; hub names go through
    :func:`resolve_weights` first) or a state dict.  ``key_map`` renames the file's keys into the
    model's layout: an importer name from ``IMPORTERS`` (``"mobilenetv2_port"``, ...) or any
    callable ``state_dict -> state_dict``.

    With ``strict=True`` any missing key, unexpected key or shape mismatch raises a
    :class:`CheckpointError` naming how many and the first few, and nothing is loaded.  With
    ``strict=False`` the matching tensors are loaded and the rest is logged and listed in the
    returned :class:`LoadReport`.  ``label`` names the source in messages (default: its path).
    A missing BatchNorm ``num_batches_tracked`` counter is not an
    error (older files lack it; it only matters for momentum=None).

    Example::

        model = build_sr_model("carn_m")
        report = load_weights(model, "../shared/weights/carn_m.pth", key_map="carn_release")
        report.summary()          # 'all 58 tensors loaded'
    """
    if isinstance(source, Mapping):
        state, name = dict(source), "state dict"
    else:
        path = resolve_weights(source)
        state, name = read_state_dict(path), str(path)
    name = label or name
    mapper, mapper_name = _importer(key_map)
    try:
        state = mapper(state)
    except CheckpointError as exc:
        raise CheckpointError(f"{name}: {exc}") from None
    target = model.state_dict()
    report = LoadReport(source=name)
    loadable: StateDict = {}
    for key, value in state.items():
        if key not in target:
            report.unexpected.append(key)
        elif tuple(value.shape) != tuple(target[key].shape):
            report.mismatched.append((key, tuple(value.shape), tuple(target[key].shape)))
        else:
            loadable[key] = value
    report.missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    via = f" (importer {mapper_name})" if mapper_name else ""
    if not report.ok:
        if strict:
            raise CheckpointError(f"{name}{via}: {report.summary()}")
        log.warning("%s%s: loading what matches; %s", name, via, report.summary())
    model.load_state_dict(loadable, strict=False)
    report.loaded = list(loadable)
    log.debug("%s%s: %s", name, via, report.summary())
    return report
