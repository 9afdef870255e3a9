"""Procedurally generated image-QA data for the embedded default (no downloads).

* general: coloured shapes on noisy backgrounds ("What shape/colour...?", open and lettered multiple
  choice), emitted as an image folder + CSV -> the `csv` converter. It trains the tiny base model.
* domain: procedurally drawn dishes on a plate, emitted as FoodieQA-shaped records (question,
  choices, answer index, food_name, food_meta.food_file) -> the `foodieqa` converter, in the
  multiple-choice and open forms. The base never sees it.
"""
import csv
import json
import math
import random
from pathlib import Path

from PIL import Image, ImageDraw

SHAPES = ['circle', 'square', 'triangle', 'cross']
COLOURS = {'red': (215, 40, 40), 'green': (40, 170, 60), 'blue': (40, 70, 215), 'yellow': (235, 200, 40),
           'purple': (140, 60, 170)}
DISHES = ['noodles', 'dumplings', 'fried rice', 'tofu', 'hotpot', 'fish', 'greens', 'mooncake']
DISH_QUESTION = ('图中的菜是哪一道？', 'Which dish is shown in the picture?')
WORDS = ' '.join(SHAPES + list(COLOURS) + DISHES) + ' What shape colour is in the picture? Which dish is shown'


def _background(size, rng, base=(235, 235, 235), noise=18):
    img = Image.new('RGB', (size, size), base)
    pixels = img.load()
    for _ in range(size * size // 6):
        x, y = rng.randrange(size), rng.randrange(size)
        shade = rng.randint(-noise, noise)
        pixels[x, y] = tuple(max(0, min(255, c + shade)) for c in base)
    return img


def _jitter(colour, rng, amount=25):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)


def draw_shape(shape, colour, size, rng):
    img = _background(size, rng)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.22, 0.34) * size
    cx, cy = rng.uniform(r + 2, size - r - 2), rng.uniform(r + 2, size - r - 2)
    fill = _jitter(COLOURS[colour], rng)
    if shape == 'circle':
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == 'square':
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == 'triangle':
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    else:
        w = r / 2.5
        draw.rectangle([cx - r, cy - w, cx + r, cy + w], fill=fill)
        draw.rectangle([cx - w, cy - r, cx + w, cy + r], fill=fill)
    return img


def draw_dish(dish, size, rng):
    """A plate on a wooden table with the dish's colours and texture."""
    img = _background(size, rng, base=(150, 105, 60), noise=25)
    draw = ImageDraw.Draw(img)
    m = size * rng.uniform(0.04, 0.1)
    draw.ellipse([m, m, size - m, size - m], fill=_jitter((245, 245, 240), rng, 8))
    c, r = size / 2, size / 2 - m - size * 0.08

    def spots(n, colour, radius):
        for _ in range(n):
            a, d = rng.uniform(0, 2 * math.pi), r * math.sqrt(rng.random())
            x, y = c + d * math.cos(a), c + d * math.sin(a)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=_jitter(colour, rng, 15))
    if dish == 'noodles':
        for k in range(7):
            y0 = c - r * 0.7 + k * r * 0.22
            draw.line([(c - r * 0.8 + i * r * 0.2, y0 + (3 if i % 2 else -3)) for i in range(9)],
                      fill=_jitter((235, 200, 90), rng, 15), width=max(1, size // 28))
    elif dish == 'dumplings':
        for _ in range(4):
            x, y = c + rng.uniform(-r / 2, r / 2), c + rng.uniform(-r / 2, r / 2)
            draw.pieslice([x - r / 3, y - r / 3, x + r / 3, y + r / 3], 180, 360, fill=_jitter((250, 250, 235), rng, 5),
                          outline=(190, 180, 150))
    elif dish == 'fried rice':
        spots(60, (230, 170, 60), size / 45)
        spots(12, (60, 160, 60), size / 40)
    elif dish == 'tofu':
        for i in range(3):
            for j in range(3):
                x, y = c - r * 0.6 + i * r * 0.45, c - r * 0.6 + j * r * 0.45
                draw.rectangle([x, y, x + r * 0.35, y + r * 0.35], fill=_jitter((240, 225, 180), rng, 10))
    elif dish == 'hotpot':
        draw.ellipse([c - r, c - r, c + r, c + r], fill=_jitter((190, 30, 25), rng, 15))
        spots(10, (250, 220, 120), size / 30)
    elif dish == 'fish':
        draw.ellipse([c - r, c - r * 0.45, c + r * 0.6, c + r * 0.45], fill=_jitter((150, 150, 160), rng, 12))
        draw.polygon([(c + r * 0.5, c), (c + r, c - r * 0.4), (c + r, c + r * 0.4)], fill=(130, 130, 140))
    elif dish == 'greens':
        spots(14, (40, 140, 50), size / 14)
    else:  # mooncake
        draw.ellipse([c - r * 0.8, c - r * 0.8, c + r * 0.8, c + r * 0.8], fill=_jitter((170, 110, 50), rng, 12))
        draw.ellipse([c - r * 0.4, c - r * 0.4, c + r * 0.4, c + r * 0.4], outline=(120, 70, 30), width=2)
    return img


def _letters(options, answer):
    return '|'.join(options), 'ABCD'[options.index(answer)]


def write_general(out_dir, n=1000, size=56, seed=0) -> Path:
    """Image folder + CSV (image, question, answer, options); half the rows are multiple choice."""
    out_dir = Path(out_dir)
    (out_dir / 'images').mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        shape, colour = rng.choice(SHAPES), rng.choice(sorted(COLOURS))
        name = f'g{seed}_{i:05d}.png'
        draw_shape(shape, colour, size, rng).save(out_dir / 'images' / name)
        ask_shape = rng.random() < 0.5
        question = 'What shape is in the picture?' if ask_shape else 'What colour is the shape?'
        answer, pool = (shape, SHAPES) if ask_shape else (colour, sorted(COLOURS))
        options = ''
        if rng.random() < 0.5:
            choices = rng.sample([p for p in pool if p != answer], 3) + [answer]
            rng.shuffle(choices)
            options, answer = _letters(choices, answer)
        rows.append({'id': f'general-{seed}-{i}', 'image': name, 'question': question, 'answer': answer,
                     'options': options})
    path = out_dir / 'general.csv'
    with open(path, 'w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, fieldnames=['id', 'image', 'question', 'answer', 'options'])
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_domain(out_dir, n=400, size=56, seed=0) -> Path:
    """FoodieQA-shaped JSON list (sivqa record shape) with images under out_dir/images."""
    out_dir = Path(out_dir)
    (out_dir / 'images').mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    records = []
    for i in range(n):
        dish = DISHES[i % len(DISHES)] if i < len(DISHES) else rng.choice(DISHES)
        name = f'images/d{seed}_{i:05d}.png'
        draw_dish(dish, size, rng).save(out_dir / name)
        choices = rng.sample([d for d in DISHES if d != dish], 3) + [dish]
        rng.shuffle(choices)
        records.append({'question_id': f'dish-{seed}-{i}', 'question': DISH_QUESTION[0], 'question_en': DISH_QUESTION[1],
                        'choices': choices, 'choices_en': choices, 'answer': str(choices.index(dish)),
                        'food_name': dish, 'food_meta': {'food_file': name, 'food_name': dish, 'region': 'synthetic'}})
    path = out_dir / 'sivqa_synthetic.json'
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding='utf-8')
    return path
