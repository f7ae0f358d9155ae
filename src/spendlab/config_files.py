"""Config files: safe YAML loading, strict validation with errors that name the file and key, hashing.

Separate from the schema (:mod:`spendlab.config`, which re-exports these) so each stays readable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from spendlab.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


#: A config is a few hundred lines; anything far larger is a mistake or an attack.
MAX_CONFIG_BYTES = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases (``*name``).

    Configs never need them, and nested aliases expand exponentially when the data is walked (a
    "billion laughs" document of a few hundred bytes exhausts memory in validation or logging).
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"found alias *{event.anchor}: YAML anchors and aliases are not allowed in a config",
                event.start_mark)
        return super().compose_node(parent, index)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with a safe loader that also refuses aliases; errors name the file."""
    p = Path(path)
    try:
        if p.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{p}: a config file is at most {MAX_CONFIG_BYTES // 1024} KiB; this one is larger")
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: cannot read config: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    try:
        loader = _NoAliasLoader(text)  # what yaml.safe_load does, with aliases refused
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{p}{where}: not a valid YAML config (only plain data is allowed): "
                          f"{getattr(exc, 'problem', None) or str(exc).splitlines()[0]}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: a config must be a mapping at the top level")
    return data


def parse_config(model: type[M], data: dict[str, Any], source: str) -> M:
    """Validate ``data`` against ``model``; the error names the source and each bad key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
            + (f" (allowed keys: {', '.join(_allowed_keys(model, e['loc'][:-1]))})"
               if e["type"] == "extra_forbidden" else "")
            for e in exc.errors()
        )
        raise ConfigError(f"{source}: invalid config: {problems}") from None


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Return the field names of the (sub)model at ``loc``: what an unknown-key error should list."""
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return sorted(model.model_fields)


def load_config(model: type[M], path: str | Path | None) -> M:
    """Load and validate a config file, or the model's defaults when ``path`` is None."""
    if path is None:
        return model()
    return parse_config(model, load_yaml(path), str(path))


def config_hash(model: BaseModel) -> str:
    """Return a stable short hash of a resolved config (for Parquet metadata and MLflow tags)."""
    payload = json.dumps(model.model_dump(mode="json"), sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:16]
