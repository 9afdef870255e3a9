"""Deterministic train/val split of a canonical JSONL.

Rows are split by row, or with ``--group-by-image`` by connected groups of rows that
share any image, so one image never appears in both splits. The same seed and input
always give the same split; each output keeps the input's row order.
"""

from __future__ import annotations

import argparse
import os
import random
from dataclasses import dataclass
from pathlib import Path

from datasets_proc.canonical import refuse_overwriting_inputs, row_images, write_jsonl
from datasets_proc.errors import InputError
from datasets_proc.records import read_json_records


@dataclass
class SplitReport:
    rows: int
    groups: int
    train: int
    val: int
    grouped_by_image: bool

    def summary(self) -> str:
        unit = f"{self.groups} image groups" if self.grouped_by_image else f"{self.groups} rows"
        return f"split: {self.rows} rows ({unit}) -> train {self.train}, val {self.val}"


def _image_groups(rows: list[dict]) -> list[list[int]]:
    """Row indices grouped so rows sharing any image (directly or through others) stay together."""
    parent = list(range(len(rows)))

    def find(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_row_with_image: dict[str, int] = {}
    for index, row in enumerate(rows):
        for image in row_images(row):
            other = first_row_with_image.setdefault(image, index)
            parent[find(index)] = find(other)
    groups: dict[int, list[int]] = {}
    for index in range(len(rows)):
        groups.setdefault(find(index), []).append(index)
    # Order groups by their first row so the shuffle below only depends on the input order.
    return sorted(groups.values(), key=lambda members: members[0])


def _val_target(n_rows: int, val_ratio: float | None, val_count: int | None) -> int:
    if (val_ratio is None) == (val_count is None):
        raise ValueError("give exactly one of val_ratio or val_count")
    if val_count is not None:
        if not 0 <= val_count <= n_rows:
            raise ValueError(f"val_count {val_count} is outside 0..{n_rows}")
        return val_count
    if not 0.0 <= val_ratio <= 1.0:
        raise ValueError(f"val_ratio {val_ratio} is outside 0..1")
    return round(n_rows * val_ratio)


def split_rows(
    rows: list[dict],
    val_ratio: float | None = None,
    val_count: int | None = None,
    seed: int = 0,
    group_by_image: bool = False,
) -> tuple[list[dict], list[dict], SplitReport]:
    """Return (train, val, report). By row, val has exactly the target size; by image group,
    whole groups are taken until the target is reached, so val may run over by part of a group."""
    target = _val_target(len(rows), val_ratio, val_count)
    groups = _image_groups(rows) if group_by_image else [[index] for index in range(len(rows))]
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    val_indices: set[int] = set()
    for group_index in order:
        if len(val_indices) >= target:
            break
        val_indices.update(groups[group_index])
    train = [row for index, row in enumerate(rows) if index not in val_indices]
    val = [row for index, row in enumerate(rows) if index in val_indices]
    report = SplitReport(len(rows), len(groups), len(train), len(val), group_by_image)
    return train, val, report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="canonical JSONL to split")
    parser.add_argument("-o", "--output", required=True, help="train JSONL to write")
    parser.add_argument("--val-output", required=True, help="validation JSONL to write")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--val-ratio", type=float, help="fraction of rows for validation (0..1)")
    size.add_argument("--val-count", type=int, help="number of rows for validation")
    parser.add_argument("--seed", type=int, default=0, help="shuffle seed (default 0)")
    parser.add_argument(
        "--group-by-image", action="store_true", help="keep all rows that share an image in the same split"
    )


def run(args: argparse.Namespace) -> int:
    if Path(args.output).resolve() == Path(args.val_output).resolve():
        raise InputError(f"{args.val_output}: --val-output must differ from --output")
    for output in (args.output, args.val_output):
        refuse_overwriting_inputs(output, [args.input])
    rows = read_json_records(args.input)
    for index, row in enumerate(rows):
        if not isinstance(row, dict) or "conversations" not in row:
            raise InputError(f"{args.input}: row {index} is not a canonical conversation row")
    try:
        train, val, report = split_rows(rows, args.val_ratio, args.val_count, args.seed, args.group_by_image)
    except ValueError as error:
        raise InputError(f"{args.input}: {error}") from error
    write_jsonl(train, args.output, [args.input])
    write_jsonl(val, args.val_output, [args.input, args.output])
    print(report.summary())
    print(f"wrote {len(train)} rows to {args.output} and {len(val)} rows to {os.fspath(args.val_output)}")
    return 0
