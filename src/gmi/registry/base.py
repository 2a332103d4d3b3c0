"""The store interface: what a Hub needs from wherever a registry lives.

`gmi.registry.store.Registry` (SQLite + files in one directory) is today's implementation; a
PostgreSQL one (hub-scale part 2) implements the same methods and the Hub, the CLI and the
service need no change. The packed index is reached only through `open_index`,
`index_token` and `sync_index`, so a store decides how it keeps its index in step with its
catalogue (SQLite: triggers + one transaction; gmi.registry.packed).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from gmi.registry.packed import PackedIndex
    from gmi.registry.store import ModelRecord
    from gmi.settings import HubSettings
    from gmi.spec.specification import Specification


@runtime_checkable
class Store(Protocol):
    home: Path
    read_only: bool

    # settings: text rows, first writer wins unless overwrite (gmi.settings parses them)
    def settings(self) -> dict[str, str]: ...
    def set_settings(
        self, values: dict[str, str], *, overwrite: bool = False
    ) -> dict[str, str]: ...

    # the catalogue
    def add(
        self,
        name: str,
        spec: Specification,
        *,
        description: str | None = None,
        replace: bool = False,
        extra: dict[str, Any] | None = None,
        thumbnails: list[bytes] | None = None,
        model_hashes: list[str] | None = None,
    ) -> ModelRecord: ...
    def remove(self, name: str) -> ModelRecord: ...
    def exists(self, name: str) -> bool: ...
    def get(self, name: str) -> ModelRecord: ...
    def list(self) -> list[ModelRecord]: ...
    def list_names(self, limit: int | None = None) -> list[str]: ...
    def count(self) -> int: ...
    def page(self, offset: int, limit: int) -> list[ModelRecord]: ...
    def descriptions(self, names: list[str]) -> dict[str, str]: ...
    def load_spec(self, record: ModelRecord) -> Specification: ...
    def model_hashes(self, name: str) -> list[str]: ...
    def models_with_hash(self, model_hash: str) -> list[str]: ...
    def thumbnail(self, record: ModelRecord, index: int) -> Path: ...

    # the packed index
    def index_token(self) -> str: ...
    def open_index(self, settings: HubSettings) -> PackedIndex: ...
    def sync_index(self, settings: HubSettings, *, full: bool = False) -> None: ...
