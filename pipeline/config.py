"""Typed configuration: ``config/default.toml`` is the source of truth for every default.

Each stage owns a frozen options dataclass (declared beside the code that reads it);
this module composes them into one :class:`Config`, loads TOML files on top of the
defaults, applies CLI overrides and rejects unknown keys or wrong types with a
``ValueError`` that names the key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .analysis.conduct import ConductOptions
from .analysis.noise import NoiseOptions
from .analysis.pii import PiiOptions
from .analysis.talk import TalkOptions
from .asr import AsrOptions
from .audio import AudioOptions
from .diarize import DiarizationOptions
from .review.options import ReviewOptions
from .roles import RoleOptions
from .vad import VadOptions

DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "default.toml"


@dataclass(frozen=True)
class OutputOptions:
    words: bool = True  # keep word timings in records (needed by reanalyze and review)
    vtt: bool = True
    rttm: bool = True


@dataclass(frozen=True)
class Config:
    audio: AudioOptions = field(default_factory=AudioOptions)
    vad: VadOptions = field(default_factory=VadOptions)
    asr: AsrOptions = field(default_factory=AsrOptions)
    diarization: DiarizationOptions = field(default_factory=DiarizationOptions)
    roles: RoleOptions = field(default_factory=RoleOptions)
    talk: TalkOptions = field(default_factory=TalkOptions)
    noise: NoiseOptions = field(default_factory=NoiseOptions)
    conduct: ConductOptions = field(default_factory=ConductOptions)
    pii: PiiOptions = field(default_factory=PiiOptions)
    output: OutputOptions = field(default_factory=OutputOptions)
    review: ReviewOptions = field(default_factory=ReviewOptions)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def hash(self) -> str:
        """Stable hash of every setting; part of a call's idempotency key."""
        settings = self.to_dict()
        settings.pop("review", None)  # the review app's users/roots do not change analysis results
        blob = json.dumps(settings, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def replace(self, **sections: Any) -> "Config":
        return dataclasses.replace(self, **sections)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ValueError(f"config: [{where}] must be a table, got {type(value).__name__}")
        return _build(hint, value, where)
    if origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"config: {where}: bad value {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"config: {where} must be a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[]") for v in value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"config: {where} must be a table, got {value!r}")
        vt = args[1] if len(args) == 2 else Any
        return {str(k): _coerce(v, vt, f"{where}.{k}") for k, v in value.items()}
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"config: {where} must be a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"config: {where} must be a whole number, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ValueError(f"config: {where} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"config: {where} must be a string, got {value!r}")
        return value
    return value


def _build(cls: type, data: dict, where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        prefix = f"[{where}] " if where else ""
        raise ValueError(f"config: {prefix}unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}" if where else k) for k, v in data.items()}
    return cls(**kwargs)


def _deep_merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config: file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"config: {path} is not valid TOML: {e}") from None


def load_config(path: str | Path | None = None, *, overrides: dict | None = None) -> Config:
    """Defaults from ``config/default.toml``, then ``path``, then ``overrides`` (nested dict)."""
    data = read_toml(DEFAULT_CONFIG_PATH) if DEFAULT_CONFIG_PATH.is_file() else {}
    if path is not None:
        data = _deep_merge(data, read_toml(path))
    if overrides:
        data = _deep_merge(data, overrides)
    return _build(Config, data)


def config_from_dict(data: dict) -> Config:
    return _build(Config, data)
