"""Old import path of gmi.metadata (kept for one release)."""

from gmi.metadata import Embedded, read_embedded
from gmi.metadata.containers import decode_user_comment
from gmi.metadata.writers.a1111 import parse_a1111

__all__ = ["Embedded", "decode_user_comment", "parse_a1111", "read_embedded"]
