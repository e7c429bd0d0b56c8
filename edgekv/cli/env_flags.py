"""Flags from ``EDGEKV_*`` environment variables, for every server subcommand.

Theory of operation: :func:`apply_env_defaults` lets every flag of a
subcommand also come from ``EDGEKV_<FLAG>`` (dashes as underscores), which is
how a container is configured; an explicit flag still wins. Values are
converted with the flag's own type when the parser is built, but a bad one
is only reported (one line, naming the variable) when that subcommand runs
and the flag was not given, so a stray variable never breaks other commands.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from edgekv.core.errors import UsageError

ENV_PREFIX = "EDGEKV_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class _BadEnv:
    """The default of a flag whose environment variable could not be converted."""

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return "<invalid environment value>"


def env_name(flag: str) -> str:
    """``--cache-max-bytes`` -> ``EDGEKV_CACHE_MAX_BYTES``."""
    return ENV_PREFIX + flag.lstrip("-").upper().replace("-", "_")


def _type_name(action: argparse.Action) -> str:
    if action.type is float:
        return "a number"
    if action.type is int:
        return "a whole number"
    return f"a {action.metavar}" if isinstance(action.metavar, str) else "a valid value"


def _convert(action: argparse.Action, flag: str, name: str, raw: str) -> Any:
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        lowered = raw.strip().lower()
        if lowered not in _TRUE + _FALSE:
            return _BadEnv(f"{name}={raw!r}: must be 1 or 0 (true/false) for {flag}")
        given = lowered in _TRUE
        return given if isinstance(action, argparse._StoreTrueAction) else not given
    value: Any = raw
    if callable(action.type):
        try:
            value = action.type(raw)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            return _BadEnv(f"{name}={raw!r}: {flag} needs {_type_name(action)}")
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(str(choice) for choice in action.choices)
        return _BadEnv(f"{name}={raw!r}: {flag} must be one of {choices}")
    return value


def apply_env_defaults(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    """Let every ``--flag`` of ``parser`` default to ``EDGEKV_FLAG`` from the environment.

    Call it after the flags and ``set_defaults(run=...)``: it wraps ``run`` so a
    variable with a bad value (and no flag overriding it) is one ``edgekv: error:``
    line naming the variable. An empty variable counts as unset. A flag that is
    ``required`` stops being required when its variable is set. The variables are
    listed in the command's ``--help`` epilog.
    """
    environ = os.environ if environ is None else environ
    names = []
    for action in parser._actions:
        flags = [option for option in action.option_strings if option.startswith("--")]
        if not flags or action.dest == "help" or action.help == argparse.SUPPRESS:
            continue
        name = env_name(flags[0])
        names.append(name)
        raw = environ.get(name, "")
        if raw == "":
            continue
        action.default = _convert(action, flags[0], name, raw)
        action.required = False
    listed = "\n".join(f"  {name}" for name in names)
    parser.epilog = (
        f"{parser.epilog or ''}\n\n"
        "environment: every flag can also be given as EDGEKV_<FLAG> (dashes as underscores;\n"
        "an explicit flag wins, an empty variable counts as unset, switches take 1 or 0):\n"
        f"{listed}"
    ).lstrip("\n")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    run = parser.get_default("run")
    if run is not None:
        parser.set_defaults(run=_checked(run))


def _checked(
    run: Callable[[argparse.Namespace], Awaitable[int]],
) -> Callable[[argparse.Namespace], Awaitable[int]]:
    async def checked(args: argparse.Namespace) -> int:
        for value in vars(args).values():
            if isinstance(value, _BadEnv):
                raise UsageError(value.message)
        return await run(args)

    return checked
