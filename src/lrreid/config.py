"""Run configs: YAML -> typed dataclasses, in one place.

A run config names a method and holds the sections every run has (``data``, ``train``, ``eval``)
plus the method's own sections (``model``, ``loss``, ...), validated by the dataclass its
:class:`~lrreid.methods.base.MethodSpec` declares as ``config_class``::

    _base_: ../base.yaml          # optional: inherit and override (a list is merged left to right)
    method: pri
    seed: 0
    data: {dataset: caviar, root: ../shared/data/CAVIAR4REID, protocol: genuine}
    train: {batch_size: 16, output_dir: runs/pri-caviar}
    model: {...}                  # checked by the method's config_class

``load_config("configs/pri_caviar.yaml", ["train.batch_size=8"])`` returns a :class:`RunConfig`.

Paths: a weight file named in a config file (a field declared with :func:`weights_path`, e.g.
``model.pretrained: ../../shared/weights/x.pt``) is relative to the folder of the file that names it,
so a config works from any working folder; the loaded config holds it as an absolute path.  Words
such as ``timm`` / ``same`` and values given as command-line overrides are kept as written.  Data
and output folders (``data.root``, ``train.output_dir``) stay relative to the working folder.
Every problem (unknown key, wrong type, missing file, bad override) raises a one-line
:class:`~lrreid.errors.ConfigError` that names the key and what was expected.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import importlib.util
import os
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import yaml

from lrreid.errors import ConfigError
from lrreid.utils.atomic import atomic_write_text


@dataclass
class DataConfig:
    """Which dataset, which evaluation protocol, and how images are fed to the model."""

    dataset: str = "synthetic"
    root: str | None = None  # dataset folder (relative paths are relative to the working folder)
    protocol: str = "genuine"  # genuine (GRID: grid) | lr_single_shot | cross_view | grid | prepared
    num_splits: int = 10  # random train/test splits of the protocol
    split_for_training: int = 0  # which split's train part the run trains on
    input_size: tuple[int, int] = (384, 128)  # (height, width) fed to the re-ID model
    prepared: str | None = None  # folder written by `lrreid prepare`, read with load_prepared_splits
    dataset_args: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments of the dataset loader
    protocol_args: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments of the protocol

    def __post_init__(self):
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise ValueError(f"data.input_size={list(self.input_size)}: expected a height and width >= 1 px")


@dataclass
class TrainConfig:
    """The engine's settings: batches, device, where the run lives, checkpoints, logging."""

    batch_size: int = 16  # global batch (split evenly across DDP processes)
    num_instances: int = 4  # images per identity in a batch when a phase asks for identity batches
    num_workers: int = 0
    num_threads: int = 0  # torch CPU threads per process; 0 = auto (cores / processes, 1 on a busy machine)
    device: str = "auto"  # auto | cpu | cuda | cuda:1 ...
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast dtype of the training step
    output_dir: str = "runs/default"
    checkpoint_every: int = 1  # epochs between checkpoints (the end of every phase is always saved)
    # which checkpoints stay: "last" (the newest complete one, plus the best evaluated one when eval.every
    # evaluates during training), "all", or N (the N newest per-epoch ones plus every phase end); null = all
    keep_checkpoints: Literal["last", "all"] | int | None = "last"
    log_every: int = 10  # iterations between log lines / TensorBoard points
    max_iters_per_epoch: int | None = None  # cut epochs short for quick runs
    grad_clip: float | None = None  # max gradient norm
    resume: bool = False  # continue from the run folder's last checkpoint
    one_model_per_split: bool = False  # train one model per split of eval.splits into <output_dir>/split<i>/ (lrreid train --each-split)
    tensorboard: bool = True
    progress: bool = True

    def __post_init__(self):
        if self.num_threads < 0:
            raise ValueError(f"train.num_threads must be >= 0 (0 = auto), got {self.num_threads}")
        if isinstance(self.keep_checkpoints, int) and self.keep_checkpoints < 1:
            raise ValueError(f"train.keep_checkpoints must be 'last', 'all' or a number >= 1, got {self.keep_checkpoints}")


@dataclass
class EvalConfig:
    """Evaluation during (EvalHook) and after training (`lrreid evaluate`)."""

    every: int = 0  # epochs between evaluations during training (0: never)
    at_end: bool = False  # evaluate once training has finished
    batch_size: int = 64
    splits: list[int] | None = None  # which protocol splits (None: all)
    ranks: list[int] = field(default_factory=lambda: [1, 5, 10, 20])


_COMMON_SECTIONS = {"data": DataConfig, "train": TrainConfig, "eval": EvalConfig}


@dataclass
class RunConfig:
    """A whole run: ``method``, ``seed``, ``imports``, the common sections and the method's sections.

    The method's sections live in ``method_config`` (an instance of its ``config_class``) and are
    also reachable as attributes: ``cfg.model`` is ``cfg.method_config.model``.
    """

    method: str
    seed: int = 0
    imports: list[str] = field(default_factory=list)  # modules or .py files imported first (register your own methods)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    method_config: Any = None
    source: str | None = None  # the file it was loaded from (not saved)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: the method's own sections.
        mc = self.__dict__.get("method_config")
        if mc is not None and dataclasses.is_dataclass(mc) and name in {f.name for f in dataclasses.fields(mc)}:
            return getattr(mc, name)
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def to_dict(self) -> dict:
        """Plain dict as it would appear in YAML (method sections at top level)."""
        out: dict[str, Any] = {"method": self.method, "seed": self.seed}
        if self.imports:
            out["imports"] = list(self.imports)
        for name in _COMMON_SECTIONS:
            out[name] = _to_plain(getattr(self, name))
        if self.method_config is not None:
            out.update(_to_plain(self.method_config))
        return out


# Values of a weight field that are not files: timm's own weights, "as F's", a hub name.
WEIGHT_WORDS = ("timm", "hub", "same")


def weights_path(default: str | None = None):
    """A config field holding a weight file (or a word of :data:`WEIGHT_WORDS`); relative to the config file."""
    return field(default=default, metadata={"weights_path": True})


# ------------------------------------------------------------------------------------------------
def load_config(source: str | os.PathLike | dict, overrides: Sequence[str] = ()) -> RunConfig:
    """Read a YAML file (or a dict), apply ``_base_`` inheritance and dotted overrides, validate.

    Example::

        cfg = load_config("configs/pri_caviar.yaml", ["train.batch_size=8", "data.num_splits=2"])
        cfg.train.batch_size  # 8
    """
    if isinstance(source, dict):
        raw = _resolve_bases(dict(source), Path.cwd(), [])
        origin = None
    else:
        path = Path(source)
        raw = _read_yaml_with_bases(path, [])
        keys = _weight_path_keys(raw)
        if keys:  # read again, each file's weight paths made absolute against that file's folder
            raw = _read_yaml_with_bases(path, [], keys)
        origin = str(path)
    for item in overrides:
        apply_override(raw, item)
    cfg = config_from_dict(raw)
    cfg.source = origin
    return cfg


def config_from_dict(raw: dict) -> RunConfig:
    """Validate a fully merged dict (no ``_base_``) into a :class:`RunConfig`."""
    if not isinstance(raw, dict):
        raise ConfigError(f"a config must be a mapping of sections, got {type(raw).__name__}")
    raw = dict(raw)
    raw.pop("_base_", None)
    if "method" not in raw or raw["method"] in (None, ""):
        raise ConfigError("missing config key 'method' (the method to train, e.g. 'method: pri')")
    method = _convert(raw.pop("method"), str, "method")
    seed = _convert(raw.pop("seed", 0), int, "seed")
    imports = _convert(raw.pop("imports", []) or [], list[str], "imports")
    import_plugins(imports)

    from lrreid.methods import METHODS

    spec = METHODS.get(method)
    config_class = getattr(spec, "config_class", None)
    method_fields = {f.name for f in dataclasses.fields(config_class)} if config_class else set()
    clash = method_fields & (set(_COMMON_SECTIONS) | {"method", "seed", "imports"})
    if clash:
        raise ConfigError(f"method {method!r} config_class redefines common section(s) {sorted(clash)}")

    known = ["method", "seed", "imports", *_COMMON_SECTIONS, *sorted(method_fields)]
    for key in raw:
        if key not in known:
            raise ConfigError(_unknown_key_message(str(key), known, ""))

    sections = {name: _convert(raw.pop(name, None) or {}, cls, name) for name, cls in _COMMON_SECTIONS.items()}
    method_config = _convert(raw, config_class, "") if config_class else None
    return RunConfig(method=method, seed=seed, imports=imports, method_config=method_config, **sections)


def save_config(cfg: RunConfig, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML (atomically); ``load_config`` on it gives an equal config."""
    atomic_write_text(path, config_to_yaml(cfg))


def config_to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)


def apply_override(raw: dict, item: str) -> None:
    """Apply one ``dotted.key=value`` override in place; the value is parsed as YAML (``8``, ``[1, 2]``, ``null``)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {item!r} is not KEY=VALUE (e.g. train.batch_size=8)")
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({_first_line(exc)})") from None
    node = raw
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif not isinstance(child, dict):
            prefix = ".".join(parts[: depth + 1])
            raise ConfigError(f"override {item!r}: config key '{prefix}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def import_plugins(names: Sequence[str]) -> list[types.ModuleType]:
    """Import modules (``my_pkg.my_method``) or ``.py`` files so they can register methods/datasets.

    A file is imported once per process (under a name derived from its absolute path), however
    often it is named.  Returns the modules.
    """
    modules = []
    for name in names:
        if name.endswith(".py"):
            path = Path(name).resolve()
            module_name = "lrreid_plugin_" + "".join(c if c.isalnum() else "_" for c in str(path))
            if module_name not in sys.modules:
                if not path.is_file():
                    raise ConfigError(f"imports: file {name!r} not found")
                spec = importlib.util.spec_from_file_location(module_name, path)
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[module_name]
                    raise
            modules.append(sys.modules[module_name])
        else:
            try:
                modules.append(importlib.import_module(name))
            except ModuleNotFoundError as exc:
                raise ConfigError(f"imports: cannot import module {name!r} ({exc})") from None
    return modules


# ------------------------------------------------------------------------------------------------
def _read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(f"config file '{path}' not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML ({_first_line(exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config ({exc})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of sections, got {type(data).__name__}")
    return data


def _read_yaml_with_bases(path: Path, chain: list[Path], weight_keys: Sequence[str] = ()) -> dict:
    resolved = path.resolve()
    if resolved in chain:
        cycle = " -> ".join(str(p) for p in [*chain, resolved])
        raise ConfigError(f"_base_ inheritance loops: {cycle}")
    data = _read_yaml(path)
    for key in weight_keys:
        section, _, name = key.partition(".")
        value = data.get(section, {}).get(name) if isinstance(data.get(section), dict) else None
        if isinstance(value, str) and value and value not in WEIGHT_WORDS and ":" not in value:
            value = os.path.expanduser(value)
            data[section][name] = value if os.path.isabs(value) else os.path.normpath(path.parent.absolute() / value)
    return _resolve_bases(data, path.parent, [*chain, resolved], weight_keys)


def _weight_path_keys(raw: dict) -> list[str]:
    """``section.field`` of every weight field of the config's method (none when the method is unknown yet)."""
    try:
        import_plugins(_convert(raw.get("imports") or [], list[str], "imports"))
        from lrreid.methods import METHODS

        config_class = getattr(METHODS.get(str(raw.get("method"))), "config_class", None)
    except (ConfigError, KeyError, TypeError, ValueError):
        return []  # config_from_dict reports the problem
    if config_class is None:
        return []
    keys = []
    for section, tp in typing.get_type_hints(config_class).items():
        if dataclasses.is_dataclass(tp):
            keys += [f"{section}.{f.name}" for f in dataclasses.fields(tp) if f.metadata.get("weights_path")]
    return keys


def _resolve_bases(data: dict, folder: Path, chain: list[Path], weight_keys: Sequence[str] = ()) -> dict:
    bases = data.pop("_base_", None)
    if bases is None:
        return data
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"_base_ must be a file name or a list of file names, got {bases!r}")
    merged: dict = {}
    for base in bases:
        merged = _deep_merge(merged, _read_yaml_with_bases(folder / base, chain, weight_keys))
    return _deep_merge(merged, data)


def _deep_merge(base: dict, top: dict) -> dict:
    """``top`` over ``base``: sections merge key by key, everything else is replaced."""
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _unknown_key_message(key: str, known: Sequence[str], prefix: str) -> str:
    full = f"{prefix}{key}"
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else f" (known: {', '.join(known)})"
    return f"unknown config key '{full}'{hint}"


def _type_name(tp) -> str:
    if tp is type(None):
        return "null"
    if isinstance(tp, type) and not typing.get_args(tp):
        return "section" if dataclasses.is_dataclass(tp) else tp.__name__
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (list, tuple):
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            return f"list of {_type_name(args[0])}"
        if origin is tuple:
            return f"list of {len(args)} ({', '.join(_type_name(a) for a in args)})"
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    return str(tp)


def _wrong(key: str, value, tp) -> ConfigError:
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ConfigError(f"config key '{key}' = {shown}: expected {_type_name(tp)}")


def _convert(value, tp, key: str):
    """Check/convert a YAML value to the annotated type ``tp``; ``key`` is its dotted path for errors."""
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return _convert_dataclass(value, tp, key)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _convert(value, option, key)
            except ConfigError:
                continue
        raise _wrong(key, value, tp)
    if origin is Literal:
        if value in args:
            return value
        raise _wrong(key, value, tp)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _wrong(key, value, tp)
        if origin is tuple and args and not (len(args) == 2 and args[1] is Ellipsis):
            if len(value) != len(args):
                raise _wrong(key, value, tp)
            return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
        item = args[0] if args else Any
        items = [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise _wrong(key, value, tp)
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _wrong(key, value, tp)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise _wrong(key, value, tp)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads 1e-4 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise _wrong(key, value, tp)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _wrong(key, value, tp)
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _wrong(key, value, tp)
    return value


def _convert_dataclass(value, cls, key: str):
    if not isinstance(value, dict):
        raise ConfigError(f"config key '{key}' = {value!r}: expected a section (mapping of keys)")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    prefix = f"{key}." if key else ""
    kwargs = {}
    for name, val in value.items():
        if name not in fields:
            raise ConfigError(_unknown_key_message(str(name), list(fields), prefix))
        kwargs[name] = _convert(val, hints[name], f"{prefix}{name}")
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"missing config key '{prefix}{name}' (expected {_type_name(hints[name])})")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # a config class's own __post_init__ check
        raise ConfigError(f"config section '{key or cls.__name__}': {_first_line(exc)}") from None


def _to_plain(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " ".join(line.strip() for line in text)[:200] if text else type(exc).__name__
