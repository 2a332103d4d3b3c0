"""Model registry: SQLite metadata (WAL) + one safetensors spec file per model."""

from gmi.registry.store import ModelRecord, Registry, default_home

__all__ = ["ModelRecord", "Registry", "default_home"]
