"""RefCOCO / RefCOCO+ / RefCOCOg (``refs(unc).p`` / ``refs(google).p`` beside COCO's ``instances.json``) to grounding
rows, one per referring sentence of the chosen split:

* training conversations in InternVL's form (its grounding prompt; the answer ``<ref>{sent}</ref><box>[[x1, y1, x2,
  y2]]</box>`` with the box in 0..1000 of the image's width and height, rounded);
* with ``--eval``, the lines InternVL's RefCOCO evaluation reads (Qwen-VL's: image, sent, bbox as pixel
  [x1, y1, x2, y2], width, height), for ``vlmtune eval --bench refcoco``.

COCO boxes are [x, y, width, height] in pixels. A ref whose annotation or image is missing from instances.json, or
whose box has no area or leaves the image, is rejected with its reason.
"""

from __future__ import annotations

import argparse
import json
import pickle
from pathlib import Path

from datasets_proc.canonical import GPT, HUMAN, ConversionReport, build_row
from datasets_proc.cli_common import add_common_arguments, check_outputs, finish
from datasets_proc.errors import ConversionError, InputError
from datasets_proc.images import normalise_image_path
from datasets_proc.records import convert_records
from vlmtune.data.grounding import REF_PROMPT, box_text, to_1000

SPLITS = ("train", "val", "test", "testA", "testB")


def read_refs(path: str | Path) -> list:
    try:
        with open(path, "rb") as handle:
            refs = pickle.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (RefCOCO's refs(unc).p / refs(google).p)") from None
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as exc:
        raise InputError(f"{path}: not a RefCOCO refs pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(refs, list):
        raise InputError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    return refs


def read_instances(path: str | Path) -> tuple[dict, dict]:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file (COCO's instances.json beside the refs)") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    for key in ("images", "annotations"):
        if key not in data:
            raise InputError(f"{path}: no {key!r} list; expected COCO's instances.json")
    return {image["id"]: image for image in data["images"]}, {ann["id"]: ann for ann in data["annotations"]}


def pixel_box(ann: dict, image: dict) -> list[float]:
    x, y, w, h = ann["bbox"]
    if w <= 0 or h <= 0:
        raise ConversionError("empty box", f"annotation {ann['id']}: bbox {ann['bbox']} has no area")
    if x < 0 or y < 0 or x + w > image["width"] + 1 or y + h > image["height"] + 1:
        raise ConversionError("box outside image", f"annotation {ann['id']}: bbox {ann['bbox']} leaves the "
                                                   f"{image['width']}x{image['height']} image")
    return [x, y, x + w, y + h]


def convert(refs_path, instances_path, split: str = "train", image_root=None, for_eval: bool = False):
    refs = [r for r in read_refs(refs_path) if r.get("split") == split]
    images, anns = read_instances(instances_path)
    report = ConversionReport(f"refcoco ({Path(refs_path).name}, split {split}{', eval lines' if for_eval else ''})")
    records = [{"ref": ref, "sentence": sentence} for ref in refs for sentence in ref.get("sentences", [])]

    def convert_one(index: int, record: dict) -> dict:
        ref, sentence = record["ref"], record["sentence"]
        if ref.get("ann_id") not in anns:
            raise ConversionError("unknown annotation", f"ref {ref.get('ref_id')}: ann_id {ref.get('ann_id')}")
        if ref.get("image_id") not in images:
            raise ConversionError("unknown image", f"ref {ref.get('ref_id')}: image_id {ref.get('image_id')}")
        image, sent = images[ref["image_id"]], str(sentence.get("sent", "")).strip()
        if not sent:
            raise ConversionError("empty sentence", f"ref {ref.get('ref_id')}")
        box = pixel_box(anns[ref["ann_id"]], image)
        name = normalise_image_path(image["file_name"], image_root)
        if for_eval:
            return {"id": f"{ref['ref_id']}-{sentence.get('sent_id', index)}", "image": name, "sent": sent,
                    "bbox": box, "width": image["width"], "height": image["height"]}
        turns = [{"from": HUMAN, "value": "<image>\n" + REF_PROMPT.format(sent)},
                 {"from": GPT, "value": box_text(sent, [to_1000(box, image["width"], image["height"])])}]
        return build_row(f"refcoco-{ref['ref_id']}-{sentence.get('sent_id', index)}", turns, [name])
    return convert_records(records, convert_one, report), report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="refs(unc).p / refs(google).p")
    parser.add_argument("--instances", required=True, help="COCO's instances.json of the same release")
    parser.add_argument("--split", choices=SPLITS, default="train", help="which refs to convert")
    parser.add_argument("--eval", action="store_true",
                        help="write the evaluation lines (image, sent, bbox, width, height) for --bench refcoco")
    add_common_arguments(parser, "the COCO image folder (train2014); every image must exist under it")


def run(args: argparse.Namespace) -> int:
    check_outputs(args, [args.input, args.instances])
    rows, report = convert(args.input, args.instances, args.split, args.image_root, args.eval)
    return finish(args, rows, report, [args.input, args.instances])
