"""POPE: object-hallucination yes/no questions, the coco_pope_{random,popular,adversarial}.json files
(one JSON object a line: question_id, image, text, label) or a folder of them; 'yes' is the positive
class: accuracy, precision, recall, F1 and the ratio of 'yes' answers, overall and per split."""
from collections import defaultdict
from pathlib import Path

from . import register
from ._base import SHORT_ANSWER, Benchmark, Question, image_file, read_json_lines, require


def binary_metrics(rows) -> dict:
    """rows: dicts with 'truth' and 'parsed' ('yes' / 'no' / None). An unanswered row is a miss:
    wrong for accuracy, not a 'yes' for precision, and a false negative when the truth is 'yes'."""
    tp = sum(r['truth'] == 'yes' and r['parsed'] == 'yes' for r in rows)
    fp = sum(r['truth'] == 'no' and r['parsed'] == 'yes' for r in rows)
    positives = sum(r['truth'] == 'yes' for r in rows)
    correct = sum(r['truth'] == r['parsed'] for r in rows)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / positives if positives else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {'accuracy': correct / len(rows), 'precision': precision, 'recall': recall, 'f1': f1,
            'yes_ratio': (tp + fp) / len(rows), 'n': len(rows)}


@register('pope')
class Pope(Benchmark):
    name = 'pope'
    layout = 'POPE coco_pope_*.json lines (question_id, image, text, label), a file or a folder of them'
    metric = "F1 with 'yes' positive; accuracy, precision, recall, yes-ratio"
    instruction = SHORT_ANSWER
    judged_as = 'yes_no'

    def read(self, path, images=None):
        path = Path(path)
        files = sorted(p for p in path.iterdir() if p.suffix in ('.json', '.jsonl')) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f'{path}: no coco_pope_*.json files in this folder')
        questions = []
        for file in files:
            split = file.stem[len('coco_pope_'):] if file.stem.startswith('coco_pope_') else file.stem
            for number, row in enumerate(read_json_lines(file, 'POPE lines'), 1):
                where = f'{file}:{number}'
                require(row, ['question_id', 'image', 'text', 'label'], where)
                label = str(row['label']).strip().lower()
                if label not in ('yes', 'no'):
                    raise ValueError(f'{where}: label {row["label"]!r} is neither yes nor no')
                questions.append(Question(f'{split}/{row["question_id"]}', row['text'].strip(),
                                          image_file(images or file.parent, row['image']), label,
                                          {'split': row.get('category', split)}))
        return questions

    def score(self, question, output):
        parsed, rule = self.reader.yes_no(output, self.name)
        return {'parsed': parsed, 'score': float(parsed == question.truth), 'rule': rule}

    def summarise(self, rows):
        by_split = defaultdict(list)
        for row in rows:
            by_split[row['meta']['split']].append(row)
        return {'headline': 'f1', 'metrics': binary_metrics(rows),
                'breakdown': {split: binary_metrics(group) for split, group in sorted(by_split.items())}}
