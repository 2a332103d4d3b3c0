"""Name -> implementation registries for encoders, interrogators and generators.

A plug-in is one module exposing a factory; registering it is one line in the kind's table
(`gmi/encoders/__init__.py`, ...). Names may carry an argument after a colon
(`clip:openai/clip-vit-base-patch32`): the factory receives the text after the colon. Modules
are imported only when a name is first used, so heavy dependencies stay optional.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from gmi.errors import UnknownPluginError


def split_name(name: str) -> tuple[str, str | None]:
    """'clip:some/path' -> ('clip', 'some/path'); 'offline' -> ('offline', None)."""
    base, sep, arg = name.partition(":")
    return base, (arg if sep else None)


def resolve(kind: str, table: Mapping[str, str], name: str) -> Callable[..., Any]:
    """Import and return the factory registered under name's base in table ('module:attr')."""
    base, _ = split_name(name)
    if base not in table:
        valid = ", ".join(sorted(table))
        raise UnknownPluginError(f"unknown {kind} {name!r}; valid {kind}s: {valid}")
    module_name, attr = table[base].split(":")
    return getattr(importlib.import_module(module_name), attr)
