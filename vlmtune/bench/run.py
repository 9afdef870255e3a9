"""Run one benchmark: read its files, ask every question (batched greedy generation), score, summarise,
and write results.json, results.md and predictions.jsonl."""
import io
import json
import time
from pathlib import Path
from typing import Optional

from PIL import Image
from tqdm import tqdm

from ..files import atomic_writer, write_text
from .judge import Judge, judge_unread
from .report import markdown_table
from .tasks import REGISTRY


def benchmark(name: str, reader: str = None):
    try:
        return REGISTRY.get(name)(reader)
    except KeyError as exc:  # the CLI reports ValueErrors as one line
        raise ValueError(exc.args[0]) from None


def open_question_image(image) -> Optional[Image.Image]:
    if image is None:
        return None
    if isinstance(image, bytes):
        with Image.open(io.BytesIO(image)) as img:
            return img.convert('RGB')
    from ..serve.pipeline import open_image
    return open_image(image)


def first_units(questions, limit: Optional[int]):
    """The first `limit` questions, keeping each scoring unit whole (every rotation of an MMBench
    question, both questions of an MME image)."""
    if limit is None:
        return questions
    kept, units = [], set()
    for question in questions:
        unit = (question.meta.get('task'), question.meta.get('group', question.meta.get('image', question.id)))
        if unit not in units:
            if len(units) == limit:
                continue
            units.add(unit)
        kept.append(question)
    return kept


def run_benchmark(name, path, pipe, images=None, instruction=None, limit=None, batch_size=8,
                  max_new_tokens=None, progress=True, model=None, strict=False, reader=None, judge=None) -> tuple:
    """pipe: anything with batch_answers(prompts, gen_config) (serve.pipeline's pipelines).
    Returns (result, rows): the summary dict and one dict per question asked. A question whose image cannot
    be read is not asked and counts as wrong (its row says why; result['unreadable_images'] counts them);
    strict: such a question stops the run instead, once every image has been tried. reader: how outputs become
    answers (bench/readers; default: the benchmark's). judge: an OpenAI-compatible URL (…/v1) asked, with
    VLMEvalKit's judge prompts, about the outputs no rule read (bench/judge.py)."""
    from ..serve import GenerationConfig
    task = benchmark(name, reader)
    questions = first_units(task.read(Path(path), Path(images) if images else None), limit)
    if not questions:
        raise ValueError(f'{path}: no questions to ask')
    gen = GenerationConfig(max_new_tokens=max_new_tokens or task.max_new_tokens)  # greedy
    prompts = [task.prompt(q, instruction) for q in questions]
    outputs, unreadable, started = [''] * len(questions), {}, time.perf_counter()
    with tqdm(total=len(questions), desc=f'{name} {Path(path).name}', disable=not progress, unit='q') as bar:
        for start in range(0, len(questions), batch_size):
            batch, asked = [], []
            for index in range(start, min(start + batch_size, len(questions))):
                try:
                    image = open_question_image(questions[index].image)
                except (ValueError, OSError) as error:  # scored as wrong; the rest is still asked
                    unreadable[index] = str(error)
                    continue
                batch.append(prompts[index] if image is None else (prompts[index], image))
                asked.append(index)
            for index, output in zip(asked, pipe.batch_answers(batch, gen) if batch else []):
                outputs[index] = output
            bar.update(min(batch_size, len(questions) - start))
    with_images = sum(q.image is not None for q in questions)
    if with_images and len(unreadable) == with_images:
        raise ValueError(f'{path}: none of the {with_images} images could be read, e.g. '
                         f'{next(iter(unreadable.values()))}; pass the image folder with --images DIR')
    if unreadable and strict:
        first = next(iter(unreadable.values()))
        raise ValueError(f'{path}: {len(unreadable)} question(s) have an unreadable image, e.g. {first}; '
                         f'--strict stops here (without it they count as wrong)')
    seconds = time.perf_counter() - started
    rows = [{'id': q.id, 'prompt': p, 'prediction': out, 'truth': q.truth, 'meta': q.meta, **task.score(q, out),
             **({'image_error': unreadable[i]} if i in unreadable else {})}
            for i, (q, p, out) in enumerate(zip(questions, prompts, outputs))]
    judged = judge_unread(task, questions, rows, Judge(judge)) if judge else 0
    summary = task.summarise(rows)
    result = {'benchmark': name, 'file': str(path), 'model': None if model is None else str(model),
              'headline': summary['headline'], 'value': summary['metrics'][summary['headline']],
              'scale': summary.get('scale', 'fraction'),
              'metrics': summary['metrics'], 'breakdown': summary.get('breakdown', {}),
              'reader': task.reader.NAME, 'judge': judge, 'judged': judged,
              'questions_asked': len(rows), 'unanswered': sum(r['parsed'] is None for r in rows),
              'unreadable_images': len(unreadable),
              'instruction': task.instruction if instruction is None else instruction,
              'generation': {'greedy': True, 'max_new_tokens': gen.max_new_tokens, 'batch_size': batch_size,
                             'backend': getattr(pipe, 'backend', None)},
              'notes': task.notes, 'seconds': round(seconds, 2)}
    return result, rows


def write_results(result: dict, rows: list, out) -> dict:
    """results.json, results.md and predictions.jsonl in the folder `out` (each written whole, then renamed);
    `out` naming a .jsonl file (the old `vlmtune eval MODEL DATA --out rows.jsonl`) gets the per-question rows,
    with NAME.results.json / .md beside it."""
    out = Path(out)
    if out.suffix == '.jsonl':
        paths = {'json': out.with_suffix('.results.json'), 'markdown': out.with_suffix('.results.md'),
                 'predictions': out}
    else:
        paths = {'json': out / 'results.json', 'markdown': out / 'results.md', 'predictions': out / 'predictions.jsonl'}
    write_text(paths['json'], json.dumps(result, indent=1, ensure_ascii=False) + '\n')
    write_text(paths['markdown'], markdown_table(result))
    with atomic_writer(paths['predictions']) as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, default=str) + '\n')
    return paths
