"""wrangler configuration: which namespace a binding names, in which environment.

Theory of operation: :func:`load_config` reads ``wrangler.toml``,
``wrangler.json`` or ``wrangler.jsonc`` into a :class:`WranglerConfig`: the
Worker's ``name`` and, per environment, its ``kv_namespaces`` (``binding``,
``id``, ``preview_id``). As in wrangler, ``kv_namespaces`` is not inherited:
``[env.staging]`` has only the bindings it lists itself. :func:`resolve_id`
applies wrangler's rules to pick a namespace id for a binding. Every problem
is a :class:`ConfigError` whose message names the file and the problem on one
line.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekv.core.errors import UsageError

CONFIG_NAMES = ("wrangler.toml", "wrangler.json", "wrangler.jsonc")


class ConfigError(UsageError):
    """A configuration file that cannot be used, or a binding it does not define."""


@dataclass(frozen=True, slots=True)
class KVBinding:
    binding: str
    id: str | None = None
    preview_id: str | None = None


@dataclass(frozen=True)
class WranglerConfig:
    path: Path
    name: str | None
    # Bindings of the top level (key None) and of each [env.NAME].
    kv_namespaces: dict[str | None, list[KVBinding]] = field(default_factory=dict)

    def environment(self, env: str | None) -> list[KVBinding]:
        if env is not None and env not in self.kv_namespaces:
            known = ", ".join(sorted(e for e in self.kv_namespaces if e)) or "none"
            raise ConfigError(f"{self.path}: no environment {env!r} (environments: {known})")
        return self.kv_namespaces.get(env, [])

    def binding(self, name: str, env: str | None) -> KVBinding:
        for candidate in self.environment(env):
            if candidate.binding == name:
                return candidate
        where = f'[env.{env}] "kv_namespaces"' if env else 'the configured "kv_namespaces"'
        raise ConfigError(
            f'{self.path}: a namespace with binding name "{name}" was not found in {where}'
        )


def find_config(start: Path | None = None) -> Path | None:
    """The nearest wrangler config in ``start`` or a folder above it."""
    folder = (start or Path.cwd()).resolve()
    for candidate_folder in (folder, *folder.parents):
        for name in CONFIG_NAMES:
            if (candidate_folder / name).is_file():
                return candidate_folder / name
    return None


def load_config(path: str | Path) -> WranglerConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    raw = _parse(path, text)
    kv_namespaces: dict[str | None, list[KVBinding]] = {None: _bindings(path, raw, "")}
    environments = raw.get("env", {})
    if not isinstance(environments, dict):
        raise ConfigError(f'{path}: "env" must be a table of environments')
    for env_name, env_raw in environments.items():
        if not isinstance(env_raw, dict):
            raise ConfigError(f'{path}: "env.{env_name}" must be a table')
        kv_namespaces[env_name] = _bindings(path, env_raw, f"env.{env_name}.")
    name = raw.get("name")
    if name is not None and not isinstance(name, str):
        raise ConfigError(f'{path}: "name" must be a string')
    return WranglerConfig(path, name, kv_namespaces)


def _parse(path: Path, text: str) -> dict[str, Any]:
    try:
        if path.suffix == ".toml":
            return tomllib.loads(text)
        parsed = json.loads(_strip_jsonc(text) if path.suffix == ".jsonc" else text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{path}: the configuration must be an object")
    return parsed


# Strings are matched first so that nothing inside one is taken for a comment or a comma.
_JSONC_TOKENS = re.compile(
    r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/|,(?=\s*(?:(?://[^\n]*|/\*.*?\*/)\s*)*[}\]])',
    re.DOTALL,
)


def _strip_jsonc(text: str) -> str:
    """JSON with comments and trailing commas, as wrangler.jsonc allows, made plain JSON."""
    return _JSONC_TOKENS.sub(
        lambda match: match.group(0) if match.group(0).startswith('"') else "", text
    )


def _bindings(path: Path, table: dict[str, Any], where: str) -> list[KVBinding]:
    entries = table.get("kv_namespaces", [])
    if not isinstance(entries, list):
        raise ConfigError(f'{path}: "{where}kv_namespaces" must be an array')
    bindings = []
    for index, entry in enumerate(entries):
        label = f"{where}kv_namespaces[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("binding"), str):
            raise ConfigError(f'{path}: "{label}" needs a "binding" name')
        for key in ("id", "preview_id"):
            if key in entry and not isinstance(entry[key], str):
                raise ConfigError(f'{path}: "{label}.{key}" must be a string')
        bindings.append(KVBinding(entry["binding"], entry.get("id"), entry.get("preview_id")))
    return bindings


def resolve_id(binding: KVBinding, preview: bool | None, config_path: Path) -> str:
    """wrangler's rule: --preview picks preview_id, --preview false picks id,
    and no flag picks the only one present."""
    if preview is True:
        if binding.preview_id is None:
            raise ConfigError(
                f'{config_path}: binding "{binding.binding}" has no preview_id '
                "(--preview asks for it)"
            )
        return binding.preview_id
    if preview is False:
        if binding.id is None:
            raise ConfigError(f'{config_path}: binding "{binding.binding}" has no id')
        return binding.id
    if binding.id is not None and binding.preview_id is not None:
        raise ConfigError(
            f'{config_path}: binding "{binding.binding}" has both id and preview_id; '
            "pass --preview for preview_id or --preview false for id"
        )
    chosen = binding.id or binding.preview_id
    if chosen is None:
        raise ConfigError(f'{config_path}: binding "{binding.binding}" has no id or preview_id')
    return chosen
