"""Loading Hugging Face models (transformers / diffusers) without ever hanging offline.

Weights are looked up locally first (a folder, or the Hugging Face cache); a model that is not
on this machine fails at once with what to download and where to put it. Downloads happen only
when the user allows them with GMI_ALLOW_DOWNLOADS=1 (a GPU box with network access).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gmi.errors import GmiError


class ModelUnavailableError(GmiError):
    """Weights or an optional package that this machine does not have."""

    exit_code = 6


def downloads_allowed() -> bool:
    return os.environ.get("GMI_ALLOW_DOWNLOADS") == "1"


def how_to_get(source: str) -> str:
    if Path(source).expanduser().exists() or source.startswith((".", "/", "~")):
        return f"the folder {source} is missing or incomplete (it needs config + weights)"
    return (
        f"{source!r} is not in the local Hugging Face cache: on a machine with network run "
        f"`huggingface-cli download {source}` (cache: $HF_HOME, default ~/.cache/huggingface), "
        f"or pass a local folder, or set GMI_ALLOW_DOWNLOADS=1 to let gmi download it"
    )


def require(package: str, extra: str) -> None:
    """Fail with the install command when an optional dependency is missing."""
    import importlib.util

    if importlib.util.find_spec(package) is None:
        raise ModelUnavailableError(f"{package} is not installed: pip install 'gmi[{extra}]'")
    quiet_libraries()


def quiet_libraries() -> None:
    """Keep the libraries' advice (deprecations, optional backends) off the user's stderr:
    gmi prints one line per problem, its own. A library not imported yet is told by its
    verbosity variable (importing diffusers just to quiet it cost 3.7 s per process); one
    already imported is set directly."""
    for name in ("transformers", "diffusers"):
        os.environ.setdefault(f"{name.upper()}_VERBOSITY", "error")
        if name in sys.modules:
            logging_module = importlib.import_module(f"{name}.utils.logging")
            logging_module.set_verbosity_error()
            logging_module.disable_progress_bar()


def load_pretrained(loader: Callable[..., Any], source: str, **kwargs: Any) -> Any:
    """loader.from_pretrained(source) from local files only (unless downloads are allowed)."""
    path = Path(source).expanduser()
    target = str(path) if path.exists() else source
    local_only = not downloads_allowed()
    if local_only:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    quiet_libraries()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return loader(target, local_files_only=local_only, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(how_to_get(source)) from exc


def is_available(source: str) -> bool:
    """Whether a model id/folder can be loaded here without network (config file present)."""
    path = Path(source).expanduser()
    if path.exists():
        return (path / "config.json").exists() or (path / "model_index.json").exists()
    from huggingface_hub import try_to_load_from_cache

    for name in ("config.json", "model_index.json"):
        hit = try_to_load_from_cache(source, name)
        if isinstance(hit, str):
            return True
    return False
