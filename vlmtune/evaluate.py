"""`vlmtune eval MODEL DATA --images DIR`: accuracy on held-out conversation JSONL.

Multiple-choice rows (options listed as `(A) ...` / `（A) ...`) are right when the answer's letter,
or the text of the right option, matches; open rows use VQA-style normalised exact match
(lower case, punctuation and articles removed). Per-question results go to a JSONL file.
"""
import json
import re
from pathlib import Path

import torch
from tqdm import tqdm

OPTION_LINE = re.compile(r'^[（(]([A-D])[)）]\s*(.+)$', re.MULTILINE)
ARTICLES = {'a', 'an', 'the'}


def normalise(text: str) -> str:
    text = re.sub(r'[^\w\s]', ' ', text.lower())
    return ' '.join(w for w in text.split() if w not in ARTICLES)


def options_of(question: str) -> dict:
    return {letter: option.strip() for letter, option in OPTION_LINE.findall(question)}


def predicted_letter(prediction: str, options: dict):
    text = prediction.strip()
    match = re.match(r'^[（(]?([A-D])\b', text)
    if match:
        return match.group(1)
    for letter, option in options.items():  # answered with the option's text instead of its letter
        if normalise(text) == normalise(option):
            return letter
    return None


def score(question: str, prediction: str, reference: str) -> dict:
    options = options_of(question)
    if options:
        letter = predicted_letter(prediction, options)
        truth = predicted_letter(reference, options)  # the reference may be the letter or the option's text
        return {'kind': 'multiple_choice', 'correct': letter is not None and letter == truth,
                'predicted_letter': letter}
    return {'kind': 'open', 'correct': normalise(prediction) == normalise(reference)}


@torch.no_grad()
def teacher_forced_scores(model, dataset, limit=None, batch_size=4) -> dict:
    """Mean loss and next-token accuracy over the trained (answer) tokens of a ConversationDataset."""
    from .data.collate import pad_collate
    count = len(dataset) if limit is None else min(len(dataset), limit)
    was_training = model.training
    model.eval()
    loss_sum, tokens, correct = 0.0, 0, 0
    for start in range(0, count, batch_size):
        batch = pad_collate([dataset[i] for i in range(start, min(start + batch_size, count))], 0)
        batch = {k: v.to(model.device) for k, v in batch.items()}
        if batch['pixel_values'].is_floating_point():  # uint8 tiles (the training loader's): the model normalises
            batch['pixel_values'] = batch['pixel_values'].to(model.dtype)
        logits = model(**{k: v for k, v in batch.items() if k != 'labels'}).logits.float()[:, :-1]
        labels = batch['labels'][:, 1:]
        mask = labels != -100
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100, reduction='none')
        loss_sum += float(losses[mask].sum())
        tokens += int(mask.sum())
        correct += int((logits.argmax(-1) == labels)[mask].sum())
    model.train(was_training)
    return {'loss': loss_sum / max(tokens, 1), 'token_accuracy': correct / max(tokens, 1), 'tokens': tokens}


def answer_token_accuracy(model_path, data_path, image_root=None) -> dict:
    from .data.dataset import ConversationDataset
    from .formats import load
    model, tokenizer = load(model_path)
    dataset = ConversationDataset(data_path, image_root, model.spec.data_spec(tokenizer), progress=False)
    return teacher_forced_scores(model, dataset)


def read_rows(path):
    with open(path, encoding='utf-8') as handle:
        return [json.loads(line) for line in handle if line.strip()]


def evaluate(model_path, data_path, image_root=None, out_path=None, max_new_tokens=16, limit=None, pipe=None,
             progress=True) -> dict:
    from .serve import GenerationConfig, pipeline
    pipe = pipe or pipeline(model_path, backend='auto')
    gen = GenerationConfig(max_new_tokens=max_new_tokens)
    rows = read_rows(data_path)[:limit]
    image_root = Path(image_root) if image_root else Path(data_path).parent
    results = []
    for row in tqdm(rows, desc=f'eval {Path(data_path).name}', disable=not progress):
        turns = row['conversations']
        question, reference = turns[0]['value'], turns[1]['value']
        image = row.get('image')
        prompt = (question, str(image_root / image)) if image else question
        prediction = pipe.chat(prompt, gen_config=gen).response.text
        results.append({'id': row.get('id'), 'question': question, 'reference': reference,
                        'prediction': prediction, **score(question, prediction, reference)})
    summary = summarise(results)
    if out_path:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        Path(out_path).write_text(''.join(json.dumps(r, ensure_ascii=False) + '\n' for r in results), encoding='utf-8')
    return summary


def summarise(results) -> dict:
    def accuracy(items):
        return sum(r['correct'] for r in items) / len(items) if items else None
    mc = [r for r in results if r['kind'] == 'multiple_choice']
    open_ = [r for r in results if r['kind'] == 'open']
    return {'n': len(results), 'accuracy': accuracy(results), 'multiple_choice_accuracy': accuracy(mc),
            'n_multiple_choice': len(mc), 'open_accuracy': accuracy(open_), 'n_open': len(open_)}


def format_summary(summary: dict) -> str:
    def pct(value):
        return '-' if value is None else f'{100 * value:.1f}%'
    return (f"accuracy {pct(summary['accuracy'])} (n={summary['n']}); multiple choice "
            f"{pct(summary['multiple_choice_accuracy'])} (n={summary['n_multiple_choice']}); open "
            f"{pct(summary['open_accuracy'])} (n={summary['n_open']})")
