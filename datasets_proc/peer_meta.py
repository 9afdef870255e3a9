"""The mixtures users of the peer trainers already have, as an InternVL meta file (vlmtune/data/meta.py):

* LLaMA-Factory: ``dataset_info.json`` (sharegpt-formatted entries: ``file_name``, ``columns``, ``tags``) with the
  names a run trains (``dataset: a,b``) and, optionally, its ``interleave_probs``;
* ms-swift: ``--dataset PATH#N`` (N rows of that file).

Each source is converted to a conversation JSONL (the sharegpt converter), and meta.json names it with its
repeat_time. How the mixtures map:

| peer setting | meta file | difference |
|---|---|---|
| LLaMA-Factory, no interleave_probs (concat) | repeat_time 1 each | none |
| interleave_probs p_i (interleave_under) | repeat_time_i = p_i * T / N_i with T = min_j N_j / p_j | LLaMA-Factory draws rows at random until a source runs out, so p_i * T is its expected count; here the first rows, exactly that many |
| ms-swift PATH#N, N <= rows | repeat_time N / rows (the first N rows) | ms-swift samples N rows at random |
| ms-swift PATH#N, N > rows | repeat_time N / rows when a whole multiple | a fraction above 1 is refused (meta files repeat whole files) |
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from datasets_proc import sharegpt
from datasets_proc.canonical import ConversionReport, write_jsonl
from datasets_proc.errors import InputError
from datasets_proc.records import convert_records, read_json_records


def _standard(record: dict, columns: dict, tags: dict) -> dict:
    """An entry's record under the default names: messages / images, role / content, user / assistant / system."""
    messages_key = columns.get("messages", "conversations")
    out = {"id": record.get("id")} if record.get("id") is not None else {}
    out["images"] = record.get(columns.get("images", "images"))
    role, content = tags.get("role_tag", "from" if messages_key == "conversations" else "role"), \
        tags.get("content_tag", "value" if messages_key == "conversations" else "content")
    names = {tags.get("user_tag", "human" if role == "from" else "user"): "user",
             tags.get("assistant_tag", "gpt" if role == "from" else "assistant"): "assistant",
             tags.get("system_tag", "system"): "system"}
    turns = record.get(messages_key)
    if not isinstance(turns, list):
        return {**out, "messages": turns}
    out["messages"] = [{"role": names.get(t.get(role), t.get(role)), "content": t.get(content)}
                       if isinstance(t, dict) else t for t in turns]
    system = columns.get("system")
    if system and record.get(system):
        out["messages"] = [{"role": "system", "content": record[system]}] + out["messages"]
    return out


REJECTED = []  # the rows the sources' conversions rejected in this run (for --strict)


def _convert_source(path: Path, out: Path, image_root, columns=None, tags=None) -> int:
    records = read_json_records(path)
    report = ConversionReport(f"{path.name}")
    rows = convert_records(records, lambda i, r: sharegpt.convert_record(
        i, _standard(r, columns or {}, tags or {}) if (columns or tags) else r, image_root), report)
    print(report.summary())
    if not rows:
        raise InputError(f"{path}: no row converted (reasons above); a source needs rows to join a mixture")
    write_jsonl(rows, out, [path])
    REJECTED.extend(report.rejected)
    return len(rows)


def _write_meta(out_dir: Path, sources: dict) -> Path:
    meta = out_dir / "meta.json"
    meta.write_text(json.dumps(sources, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {meta} ({len(sources)} sources)")
    return meta


def llamafactory(info_path, names: list[str], out_dir, probs: list[float] | None = None, media_dir=None) -> Path:
    info_path, out_dir = Path(info_path), Path(out_dir)
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{info_path}: cannot read dataset_info.json ({exc})") from None
    if probs is not None and len(probs) != len(names):
        raise InputError(f"--interleave-probs has {len(probs)} values for {len(names)} datasets")
    out_dir.mkdir(parents=True, exist_ok=True)
    media = Path(media_dir) if media_dir else info_path.parent
    counts, entries = {}, {}
    for name in names:
        entry = info.get(name)
        if entry is None:
            raise InputError(f"{info_path}: no dataset {name!r}; it has {sorted(info)}")
        if entry.get("formatting", "alpaca") != "sharegpt":
            raise InputError(f"{info_path}: {name!r} is formatted {entry.get('formatting', 'alpaca')!r}; only "
                             "sharegpt entries carry conversations with images")
        if "file_name" not in entry:
            raise InputError(f"{info_path}: {name!r} has no local file_name (hub datasets are not read here)")
        annotation = out_dir / f"{name}.jsonl"
        counts[name] = _convert_source(info_path.parent / entry["file_name"], annotation, media,
                                       entry.get("columns"), entry.get("tags"))
        entries[name] = {"root": str(media), "annotation": str(annotation), "repeat_time": 1}
    if probs is not None:
        if any(p <= 0 for p in probs) or abs(sum(probs) - 1) > 1e-6:
            raise InputError(f"--interleave-probs {probs}: positive and summing to 1, one per dataset")
        total = min(counts[n] / p for n, p in zip(names, probs))
        for name, p in zip(names, probs):
            entries[name]["repeat_time"] = round(p * total / counts[name], 6)
    return _write_meta(out_dir, entries)


def swift(specs: list[str], out_dir, image_root=None) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for spec in specs:
        path, _, wanted = spec.partition("#")
        path = Path(path)
        annotation = out_dir / f"{path.stem}.jsonl"
        rows = _convert_source(path, annotation, image_root)
        repeat = 1
        if wanted:
            if not wanted.isdigit() or int(wanted) < 1:
                raise InputError(f"{spec}: #N takes a positive row count")
            repeat = int(wanted) / rows
            if repeat > 1 and int(wanted) % rows:
                raise InputError(f"{spec}: {wanted} rows of {rows} is a fraction above 1 ({repeat:.3f}); a meta file "
                                 f"repeats whole files: use #{rows * int(repeat)} or #{rows * (int(repeat) + 1)}")
        entries[path.stem] = {"root": str(Path(image_root) if image_root else path.parent),
                              "annotation": str(annotation), "repeat_time": round(repeat, 6)}
    return _write_meta(out_dir, entries)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", nargs="+", help="LLaMA-Factory: its dataset_info.json; ms-swift: PATH[#N] ...")
    parser.add_argument("--from", dest="peer", choices=("llamafactory", "swift"), required=True)
    parser.add_argument("--dataset", help="LLaMA-Factory: the names a run trains, comma-separated (a,b)")
    parser.add_argument("--interleave-probs", help="LLaMA-Factory: its interleave_probs, comma-separated")
    parser.add_argument("--image-root", help="the folder image paths are relative to (LLaMA-Factory: media_dir, "
                                             "default dataset_info.json's folder; ms-swift: each file's folder)")
    parser.add_argument("-o", "--output", required=True, help="folder for the converted sources and meta.json")


def run(args: argparse.Namespace) -> int:
    if args.peer == "llamafactory":
        if len(args.input) != 1 or not args.dataset:
            raise InputError("--from llamafactory takes one dataset_info.json and --dataset a,b")
        probs = [float(p) for p in args.interleave_probs.split(",")] if args.interleave_probs else None
        llamafactory(args.input[0], args.dataset.split(","), args.output, probs, args.image_root)
    else:
        swift(args.input, args.output, args.image_root)
    if REJECTED and args.strict:
        print(f"error: --strict: {len(REJECTED)} row(s) rejected (reasons above)", file=sys.stderr)
        return 1
    return 0
