"""Command line: ``python -m datasets_proc {foodieqa,llava,sharegpt,csv,hf,refcoco,split,meta,pairs} INPUT -o OUT.jsonl ...``.

Exit codes: 0 on success (rejected rows are reported, not fatal), 2 on bad input
(unreadable file, bad JSON, missing column, output that would overwrite an input).
"""

from __future__ import annotations

import argparse
import sys

from datasets_proc import csv_folder, foodieqa, hf_dataset, llava, pairs, peer_meta, refcoco, sharegpt, split
from datasets_proc.errors import InputError
from vlmtune.cli_help import DefaultsHelpFormatter

SUBCOMMANDS = {
    "foodieqa": (foodieqa, "FoodieQA single-image multiple-choice JSON (sivqa)"),
    "llava": (llava, "LLaVA / InternVL JSON or JSONL"),
    "sharegpt": (sharegpt, "ShareGPT or OpenAI-messages JSON or JSONL"),
    "csv": (csv_folder, "image folder + CSV of image, question, answer[, options, id]"),
    "hf": (hf_dataset, "local Hugging Face dataset folder or parquet file"),
    "refcoco": (refcoco, "RefCOCO / RefCOCO+ / RefCOCOg refs pickle + COCO instances.json -> grounding rows"),
    "split": (split, "deterministic train/val split of a canonical JSONL"),
    "pairs": (pairs, "preference rows (LLaMA-Factory pairwise, ms-swift rejected_response, RLAIF-V, MMPR) -> MPO rows"),
    "meta": (peer_meta, "LLaMA-Factory dataset_info.json (+ interleave_probs) or ms-swift PATH#N -> an InternVL meta file"),
}


def build_parser(prog: str = "python -m datasets_proc") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Convert raw datasets to vlmtune's canonical conversation JSONL."
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        subparser = subparsers.add_parser(name, help=help_text, description=help_text,
                                          formatter_class=DefaultsHelpFormatter)
        module.add_arguments(subparser)
        subparser.add_argument("--strict", action="store_true",
                               help="exit with status 1 when any row is rejected (the rows kept are still written)")
        subparser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None, prog: str = "python -m datasets_proc") -> int:
    parser = build_parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_request:
        # argparse exits on --help (0) and usage errors (2); return the code instead.
        return exit_request.code if isinstance(exit_request.code, int) else 2
    try:
        return args.run(args)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
