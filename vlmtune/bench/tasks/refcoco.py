"""RefCOCO / RefCOCO+ / RefCOCOg grounding, as InternVL's evaluate_grounding.py runs it: Qwen-VL's converted lines
(image, sent, bbox as pixel [x1, y1, x2, y2], width, height), the question `Please provide the bounding box
coordinate of the region this sentence describes: <ref>{sent}</ref>`, up to 100 new tokens, the first box of the
answer read and denormalised (data/grounding.py), right at IoU >= 0.5; Precision@1 per split (the file's name)."""
from pathlib import Path

from ...data.grounding import REF_PROMPT, first_box, iou, to_pixels
from . import register
from ._base import Benchmark, Question, mean, read_json_lines, require


@register('refcoco')
class RefCOCO(Benchmark):
    name = 'refcoco'
    layout = 'RefCOCO lines <split>.jsonl (image, sent, bbox [x1, y1, x2, y2] in pixels, width, height), a file or a folder'
    metric = 'Precision@1: the first box of the answer at IoU >= 0.5, per split'
    instruction = ''
    max_new_tokens = 100

    def read(self, path, images=None):
        path = Path(path)
        files = sorted(path.glob('*.jsonl')) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f'{path}: no <split>.jsonl files in this folder')
        questions = []
        for file in files:
            for number, row in enumerate(read_json_lines(file, 'RefCOCO lines'), 1):
                where = f'{file}:{number}'
                require(row, ['image', 'sent', 'bbox', 'width', 'height'], where)
                if len(row['bbox']) != 4:
                    raise ValueError(f'{where}: bbox {row["bbox"]} is not [x1, y1, x2, y2]')
                image = Path(row['image'])
                image = image if image.is_absolute() else Path(images or file.parent) / image
                questions.append(Question(f'{file.stem}/{number}', REF_PROMPT.format(row['sent']), image,
                                          [float(v) for v in row['bbox']],
                                          {'split': file.stem, 'width': row['width'], 'height': row['height']}))
        return questions

    def score(self, question, output):
        """An output without a readable box scores as the official (0, 0, 0, 0) does (wrong), and counts as unanswered."""
        meta, read = question.meta, first_box(output)
        box = to_pixels(read, meta['width'], meta['height'])
        overlap = iou(box, question.truth)
        found = read != (0.0, 0.0, 0.0, 0.0)
        return {'parsed': [round(v, 2) for v in box] if found else None, 'iou': overlap,
                'score': float(overlap >= 0.5), 'rule': 'first_box' if found else None}

    def summarise(self, rows):
        splits = sorted({row['meta']['split'] for row in rows})
        breakdown = {split: {'precision_at_1': mean(r['score'] for r in rows if r['meta']['split'] == split),
                             'n': sum(r['meta']['split'] == split for r in rows)} for split in splits}
        return {'headline': 'precision_at_1', 'metrics': {'precision_at_1': mean(r['score'] for r in rows)},
                'breakdown': breakdown}
