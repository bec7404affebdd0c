"""YAML run configuration with ``key.sub=value`` overrides and ``${name}`` references."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

_REF = re.compile(r"\$\{([A-Za-z0-9_.]+)\}")


def _lookup(cfg: dict[str, Any], dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _resolve(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _resolve(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v, root) for v in node]
    if isinstance(node, str):
        whole = _REF.fullmatch(node)
        if whole:
            return _resolve(_lookup(root, whole.group(1)), root)
        return _REF.sub(lambda m: str(_resolve(_lookup(root, m.group(1)), root)), node)
    return node


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Load ``path``, apply ``a.b=value`` overrides (values parsed as YAML), resolve refs."""
    cfg: dict[str, Any] = yaml.safe_load(Path(path).read_text()) or {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not of the form key=value")
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    return _resolve(cfg, cfg)
