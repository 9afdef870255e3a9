"""Converters from common raw dataset shapes to vlmtune's canonical conversation JSONL.

Each converter module exposes ``convert(...) -> (rows, report)`` plus an
``add_arguments(subparser)`` / ``run(args)`` pair used by ``python -m datasets_proc``.
"""

from datasets_proc.canonical import (
    IMAGE_TAG,
    ConversionReport,
    build_row,
    validate_row,
    write_jsonl,
)
from datasets_proc.errors import ConversionError, InputError

__all__ = [
    "IMAGE_TAG",
    "ConversionError",
    "ConversionReport",
    "InputError",
    "build_row",
    "validate_row",
    "write_jsonl",
]
