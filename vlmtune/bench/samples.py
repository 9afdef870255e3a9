"""A small sample of each benchmark in its published layout (`vlmtune eval sample NAME DIR`): the files
a reader expects, with colour-swatch images and questions about their colour, so a layout can be seen
and every reader and scorer run end to end without the real data."""
import base64
import io
import json
import random
from pathlib import Path

from PIL import Image

COLOURS = {'red': (220, 30, 30), 'green': (30, 180, 60), 'blue': (30, 60, 220), 'yellow': (235, 215, 40),
           'white': (245, 245, 245), 'black': (15, 15, 15)}


def swatch(colour: str, size=64) -> Image.Image:
    return Image.new('RGB', (size, size), COLOURS[colour])


def _save(image: Image.Image, path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path.name


def _png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format='PNG')
    return base64.b64encode(buffer.getvalue()).decode()


def _json(path: Path, obj, lines=False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ''.join(json.dumps(o) + '\n' for o in obj) if lines else json.dumps(obj, indent=1)
    path.write_text(text, encoding='utf-8')
    return path


def _picks(n, seed):
    rng = random.Random(seed)
    names = list(COLOURS)
    return rng, [names[(i + seed) % len(names)] for i in range(n)]


def mmbench(out: Path, n=4, seed=0) -> Path:
    rng, truths = _picks(n, seed)
    header = ['index', 'question', 'hint', 'A', 'B', 'C', 'D', 'answer', 'category', 'l2-category', 'split', 'image']
    lines = ['\t'.join(header)]
    for i, truth in enumerate(truths):
        options = rng.sample([c for c in COLOURS if c != truth], 3) + [truth]
        rng.shuffle(options)
        hint = 'The picture is a colour swatch.' if i % 2 else 'nan'
        lines.append('\t'.join([str(i), 'What colour is the image?', hint, *options, 'ABCD'[options.index(truth)],
                                'colour' if i % 2 else 'attribute', 'perception', 'dev', _png_base64(swatch(truth))]))
    path = out / 'MMBench_DEV_EN.tsv'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return path


def pope(out: Path, n=4, seed=0) -> Path:
    rng, truths = _picks(n, seed)
    rows = []
    for i, truth in enumerate(truths):
        asked = truth if i % 2 == 0 else rng.choice([c for c in COLOURS if c != truth])
        image = _save(swatch(truth), out / f'COCO_val2014_{i + 1:012d}.jpg')
        rows.append({'question_id': i + 1, 'image': image, 'text': f'Is the image {asked}?',
                     'label': 'yes' if asked == truth else 'no'})
    _json(out / 'coco_pope_random.json', rows, lines=True)
    return out / 'coco_pope_random.json'


def mme(out: Path, n=4, seed=0) -> Path:
    """color/ (images and their .txt side by side), artwork/ (images/ + questions_answers_YN/) and
    commonsense_reasoning/ (a cognition subtask)."""
    rng, truths = _picks(n, seed)
    root = out / 'MME_Benchmark_release_version'
    for i, truth in enumerate(truths):
        other = rng.choice([c for c in COLOURS if c != truth])
        task = ['color', 'artwork', 'commonsense_reasoning'][i % 3]
        images, texts = (root / task / 'images', root / task / 'questions_answers_YN') if task == 'artwork' \
            else (root / task, root / task)
        _save(swatch(truth), images / f'{i:04d}.jpg')
        texts.mkdir(parents=True, exist_ok=True)
        (texts / f'{i:04d}.txt').write_text(f'Is the image {truth}? Please answer yes or no.\tYes\n'
                                            f'Is the image {other}? Please answer yes or no.\tNo\n', encoding='utf-8')
    return root


def scienceqa(out: Path, n=4, seed=0) -> Path:
    rng, truths = _picks(n, seed)
    problems, test = {}, []
    for i, truth in enumerate(truths):
        pid = str(100 + i)
        choices = rng.sample([c for c in COLOURS if c != truth], 2) + [truth]
        rng.shuffle(choices)
        problems[pid] = {'question': 'Which colour is shown?', 'choices': choices, 'answer': choices.index(truth),
                         'hint': 'A swatch of paint.' if i % 2 else '', 'image': 'image.png', 'split': 'test',
                         'subject': 'natural science' if i % 2 else 'language science'}
        _save(swatch(truth), out / 'images' / 'test' / pid / 'image.png')
        test.append(pid)
    problems['999'] = {'question': 'Which word is a colour?', 'choices': ['red', 'table'], 'answer': 0, 'hint': '',
                       'image': None, 'split': 'test', 'subject': 'language science'}  # text-only: not in IMG
    test.append('999')
    _json(out / 'pid_splits.json', {'train': [], 'val': [], 'test': test})
    return _json(out / 'problems.json', problems)


def vqav2(out: Path, n=4, seed=0) -> Path:
    _, truths = _picks(n, seed)
    questions, annotations = [], []
    for i, truth in enumerate(truths):
        _save(swatch(truth), out / 'val2014' / f'COCO_val2014_{i + 1:012d}.jpg')
        questions.append({'image_id': i + 1, 'question': 'What colour is the image?', 'question_id': (i + 1) * 10})
        answers = [truth] * (10 - i) + ['dark'] * i  # fewer humans agree on later rows
        annotations.append({'question_id': (i + 1) * 10, 'image_id': i + 1, 'answer_type': 'other',
                            'multiple_choice_answer': truth, 'question_type': 'what color is the',
                            'answers': [{'answer': a, 'answer_confidence': 'yes', 'answer_id': k + 1}
                                        for k, a in enumerate(answers)]})
    _json(out / 'v2_mscoco_val2014_annotations.json', {'annotations': annotations, 'data_subtype': 'val2014'})
    return _json(out / 'v2_OpenEnded_mscoco_val2014_questions.json',
                 {'task_type': 'Open-Ended', 'data_type': 'mscoco', 'data_subtype': 'val2014', 'questions': questions})


def textvqa(out: Path, n=4, seed=0) -> Path:
    _, truths = _picks(n, seed)
    data = []
    for i, truth in enumerate(truths):
        image_id = f'{i:016x}'
        _save(swatch(truth), out / 'train_images' / f'{image_id}.jpg')
        data.append({'question_id': 34600 + i, 'question': 'what colour is the sign?', 'image_id': image_id,
                     'answers': [truth] * 7 + ['unanswerable'] * 3, 'set_name': 'val'})
    return _json(out / 'TextVQA_0.5.1_val.json', {'dataset_name': 'textvqa', 'dataset_version': '0.5.1', 'data': data})


def gqa(out: Path, n=4, seed=0) -> Path:
    _, truths = _picks(n, seed)
    questions = {}
    for i, truth in enumerate(truths):
        _save(swatch(truth), out / 'images' / f'n{i:06d}.jpg')
        questions[f'20{i:06d}'] = {'imageId': f'n{i:06d}', 'question': 'What colour is the picture?', 'answer': truth,
                                   'fullAnswer': f'The picture is {truth}.',
                                   'types': {'structural': 'query', 'semantic': 'attr', 'detailed': 'color'}}
    return _json(out / 'testdev_balanced_questions.json', questions)


def seed_bench(out: Path, n=4, seed=0) -> Path:
    rng, truths = _picks(n, seed)
    questions = []
    for i, truth in enumerate(truths):
        options = rng.sample([c for c in COLOURS if c != truth], 3) + [truth]
        rng.shuffle(options)
        _save(swatch(truth), out / 'SEED-Bench-image' / f'{i}_{i * 7}.jpg')
        questions.append({'question_id': str(101669 + i), 'question': 'What is the colour of the image?',
                          **{f'choice_{k}': o for k, o in zip('abcd', options)}, 'answer': 'ABCD'[options.index(truth)],
                          'data_id': f'{i}_{i * 7}.jpg', 'data_type': 'image', 'question_type_id': 1 + i % 2})
    questions.append({'question_id': '900000', 'question': 'What happens next?', 'choice_a': 'a', 'choice_b': 'b',
                      'choice_c': 'c', 'choice_d': 'd', 'answer': 'A', 'data_id': 'v.mp4', 'data_type': 'video',
                      'question_type_id': 10})
    return _json(out / 'SEED-Bench.json', {'questions': questions, 'question_type': {
        'Scene Understanding': 1, 'Instance Attributes': 2, 'Action Recognition': 10}})


def conversations(out: Path, n=4, seed=0) -> Path:
    _, truths = _picks(n, seed)
    rows = []
    for i, truth in enumerate(truths):
        _save(swatch(truth), out / 'images' / f'{i}.png')
        rows.append({'id': f'c{i}', 'image': f'images/{i}.png',
                     'conversations': [{'from': 'human', 'value': '<image>\nWhat colour is the image?'},
                                       {'from': 'gpt', 'value': truth}]})
    return _json(out / 'heldout.jsonl', rows, lines=True)


def refcoco(out: Path, n=4, seed=0) -> Path:
    """Two splits: a swatch of one colour on a white canvas, where the sentence names it."""
    rng, truths = _picks(n, seed)
    for split in ('refcoco_val', 'refcoco_testA'):
        rows = []
        for i, truth in enumerate(truths):
            width, height = 96 + 16 * i, 80
            x1, y1 = rng.randrange(0, width - 40), rng.randrange(0, height - 40)
            canvas = Image.new('RGB', (width, height), (255, 255, 255) if truth != 'white' else (90, 90, 90))
            canvas.paste(swatch(truth, 40), (x1, y1))
            name = _save(canvas, out / 'images' / f'{split}_{i}.png')
            rows.append({'image': f'images/{name}', 'sent': f'the {truth} square', 'bbox': [x1, y1, x1 + 40, y1 + 40],
                         'width': width, 'height': height})
        _json(out / f'{split}.jsonl', rows, lines=True)
    return out


SAMPLES = {'mmbench': mmbench, 'pope': pope, 'mme': mme, 'scienceqa': scienceqa, 'vqav2': vqav2,
           'textvqa': textvqa, 'gqa': gqa, 'seed': seed_bench, 'conversations': conversations, 'refcoco': refcoco}


def write_sample(name: str, out, n=4, seed=0) -> Path:
    """The file (or folder) to pass as `--bench NAME FILE`; images sit where the reader looks by default."""
    if name not in SAMPLES:
        raise ValueError(f'no sample for benchmark {name!r}; known: {", ".join(SAMPLES)}')
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f'{out} is not empty; choose a new folder for the sample')
    return SAMPLES[name](out, n=n, seed=seed)
