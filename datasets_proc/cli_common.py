"""Arguments and output handling shared by every converter subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Iterable

from datasets_proc.canonical import ConversionReport, refuse_overwriting_inputs, write_jsonl
from datasets_proc.errors import InputError


def add_common_arguments(parser: argparse.ArgumentParser, image_root_help: str | None = None) -> None:
    parser.add_argument("-o", "--output", required=True, help="canonical JSONL to write")
    parser.add_argument("--rejects", help="JSONL to write rejected source rows to, with their reasons")
    parser.add_argument(
        "--image-root",
        help=image_root_help
        or "folder the image paths are relative to; when given, every image must exist under it",
    )


def check_outputs(args: argparse.Namespace, inputs: Iterable[str | os.PathLike]) -> None:
    """Fail before any work when an output would overwrite an input (or outputs collide)."""
    inputs = list(inputs)
    refuse_overwriting_inputs(args.output, inputs)
    if getattr(args, "rejects", None):
        refuse_overwriting_inputs(args.rejects, inputs)
        if Path(args.rejects).resolve() == Path(args.output).resolve():
            raise InputError(f"{args.rejects}: --rejects must differ from --output")


def finish(
    args: argparse.Namespace,
    rows: list[dict],
    report: ConversionReport,
    inputs: Iterable[str | os.PathLike],
) -> int:
    """Write the rows (and rejects), print the report; the converters' common ending."""
    inputs = list(inputs)
    check_outputs(args, inputs)
    written = write_jsonl(rows, args.output, inputs)
    print(report.summary())
    print(f"wrote {written} rows to {args.output}")
    if getattr(args, "rejects", None):
        write_jsonl(report.rejected, args.rejects, inputs + [args.output])
        print(f"wrote {report.skipped} rejected rows to {args.rejects}")
    if report.skipped and getattr(args, "strict", False):
        print(f"error: --strict: {report.skipped} row(s) rejected (reasons above)", file=sys.stderr)
        return 1
    return 0
