"""Grounding rows as InternVL trains and evaluates them (internvl-training notes §3): an answer names a phrase and its
boxes, `<ref>{phrase}</ref><box>[[x1, y1, x2, y2], ...]</box>`, the coordinates integers in 0..1000 relative to the
original image's width and height (before any tiling): x' = round(x / W * 1000).

Evaluation (the official RefCOCO script): the first bracketed 4-tuple of the output is the box (any failure reads
(0, 0, 0, 0)); numbers summing to 4 or more are divided by 1000 (else taken as 0..1 fractions), then scaled by the
image's width / height; a box is right at IoU >= 0.5 (no +1 pixel convention).
"""
import re
from typing import List, Optional, Sequence, Tuple

REF_PROMPT = 'Please provide the bounding box coordinate of the region this sentence describes: <ref>{}</ref>'
# The official script's regex: the first [x1, y1, x2, y2], however many brackets around it.
FIRST_BOX = re.compile(r'\[*\[(.*?),(.*?),(.*?),(.*?)\]\]*')
REF_BOX = re.compile(r'<ref>(.*?)</ref>\s*(<box>(.*?)</box>)?', re.S)
BOX_LIST = re.compile(r'^\s*\[\s*(\[[^\[\]]*\]\s*(,\s*\[[^\[\]]*\]\s*)*)\]\s*$')


def to_1000(box: Sequence[float], width: float, height: float) -> List[int]:
    """Pixel [x1, y1, x2, y2] -> the 0..1000 integers of the training format."""
    x1, y1, x2, y2 = box
    return [round(x1 / width * 1000), round(y1 / height * 1000), round(x2 / width * 1000), round(y2 / height * 1000)]


def box_text(phrase: str, boxes: Sequence[Sequence[int]]) -> str:
    return f'<ref>{phrase}</ref><box>[{", ".join("[" + ", ".join(str(int(v)) for v in b) + "]" for b in boxes)}]</box>'


def first_box(output: str) -> Tuple[float, float, float, float]:
    """The official parse: the first 4-tuple as floats, (0, 0, 0, 0) when there is none or it does not parse."""
    try:
        return tuple(float(v) for v in FIRST_BOX.findall(output)[0])
    except (IndexError, ValueError):
        return (0.0, 0.0, 0.0, 0.0)


def to_pixels(box: Sequence[float], width: float, height: float) -> List[float]:
    scale = 1000 if sum(box) >= 4 else 1
    x1, y1, x2, y2 = (v / scale for v in box)
    return [x1 * width, y1 * height, x2 * width, y2 * height]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def answer_boxes(text: str) -> List[Tuple[str, Optional[list]]]:
    """[(phrase, boxes or None)] of an answer's `<ref>` spans; raises ValueError on a `<box>` that does not parse."""
    found = []
    for match in REF_BOX.finditer(text):
        phrase, inner = match.group(1), match.group(3)
        if inner is None:
            found.append((phrase, None))
            continue
        if not BOX_LIST.match(inner):
            raise ValueError(f'<box>{inner}</box> after <ref>{phrase}</ref> is not [[x1, y1, x2, y2], ...]')
        boxes = [[float(v) for v in group.split(',')] for group in re.findall(r'\[([^\[\]]*)\]', inner)]
        if any(len(b) != 4 for b in boxes):
            raise ValueError(f'<box>{inner}</box> after <ref>{phrase}</ref>: each box has 4 numbers')
        found.append((phrase, boxes))
    return found


def grounding_problem(answer: str) -> Optional[Tuple[str, str]]:
    """(kind, reason) of the first thing wrong with an answer's grounding, or None."""
    try:
        spans = answer_boxes(answer)
    except ValueError as exc:
        return 'bad_box', f'{exc}; write <box>[[x1, y1, x2, y2]]</box> with integers in 0..1000'
    for phrase, boxes in spans:
        if boxes is None:
            return 'ref_without_box', (f'<ref>{phrase}</ref> has no <box> after it; an answer names each phrase '
                                       f'with its boxes')
        for box in boxes:
            if not all(0 <= v <= 1000 for v in box):
                return 'box_out_of_range', (f'box {box} of <ref>{phrase}</ref> leaves 0..1000; coordinates are '
                                            f'x / width * 1000 of the original image')
            if box[0] > box[2] or box[1] > box[3]:
                return 'box_inverted', f'box {box} of <ref>{phrase}</ref> has x1 > x2 or y1 > y2; write [x1, y1, x2, y2]'
    return None
