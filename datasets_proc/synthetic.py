"""Procedurally generated image-QA data for the embedded default (no downloads).

* general: a coloured shape in one quadrant of a noisy background ("What colour is the circle?",
  "Where is the cross?"; open and lettered multiple choice), emitted as an image folder + CSV -> the
  `csv` converter. It trains the tiny base model.
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
POSITIONS = ['top left', 'top right', 'bottom left', 'bottom right']
COLOURS = {'red': (215, 40, 40), 'green': (40, 170, 60), 'blue': (40, 70, 215), 'yellow': (235, 200, 40),
           'purple': (140, 60, 170)}
DISHES = ['noodles', 'dumplings', 'fried rice', 'taro cake', 'hotpot', 'fish', 'greens', 'mooncake']
DISH_QUESTION = ('图中的菜是哪一道？', 'Which dish is shown in the picture?')
WORDS = (' '.join(SHAPES + list(COLOURS) + POSITIONS + DISHES) + ' What colour is the Where is the Which dish is shown'
         " in the picture? Answer with the option's text directly.")


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


def draw_shape(shape, colour, size, rng, position='top left'):
    """One shape of `colour`, jittered in size and place inside the `position` quadrant."""
    img = _background(size, rng)
    draw = ImageDraw.Draw(img)
    r = rng.uniform(0.13, 0.2) * size
    row, col = position.split()
    cx = size * (0.25 if col == 'left' else 0.75) + rng.uniform(-0.05, 0.05) * size
    cy = size * (0.25 if row == 'top' else 0.75) + rng.uniform(-0.05, 0.05) * size
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
    """A plate on a wooden table; each dish has its own dominant colour and texture (so a 56px
    image tells them apart), jittered in colour, layout and plate size."""
    img = _background(size, rng, base=(150, 105, 60), noise=25)
    draw = ImageDraw.Draw(img)
    m = size * rng.uniform(0.02, 0.07)
    draw.ellipse([m, m, size - m, size - m], fill=_jitter((245, 245, 240), rng, 8))
    c, r = size / 2, size / 2 - m - size * 0.05

    def spots(n, colour, radius):
        for _ in range(n):
            a, d = rng.uniform(0, 2 * math.pi), r * math.sqrt(rng.random())
            x, y = c + d * math.cos(a), c + d * math.sin(a)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=_jitter(colour, rng, 15))
    if dish == 'noodles':
        for k in range(9):
            y0 = c - r * 0.8 + k * r * 0.2
            draw.line([(c - r * 0.85 + i * r * 0.21, y0 + (2 if i % 2 else -2)) for i in range(9)],
                      fill=_jitter((240, 205, 70), rng, 15), width=max(2, size // 16))
    elif dish == 'dumplings':
        for _ in range(4):
            x, y = c + rng.uniform(-r / 2, r / 2), c + rng.uniform(-r / 2, r / 2)
            draw.pieslice([x - r / 2.5, y - r / 2.5, x + r / 2.5, y + r / 2.5], 180, 360,
                          fill=_jitter((252, 250, 238), rng, 3), outline=(170, 160, 130))
    elif dish == 'fried rice':
        spots(90, (235, 140, 40), size / 30)
        spots(8, (60, 160, 60), size / 45)
    elif dish == 'taro cake':
        for i in range(3):
            for j in range(3):
                x, y = c - r * 0.7 + i * r * 0.5, c - r * 0.7 + j * r * 0.5
                draw.rectangle([x, y, x + r * 0.42, y + r * 0.42], fill=_jitter((140, 80, 175), rng, 12))
    elif dish == 'hotpot':
        draw.ellipse([c - r, c - r, c + r, c + r], fill=_jitter((195, 30, 25), rng, 15))
        spots(6, (250, 220, 120), size / 30)
    elif dish == 'fish':
        draw.ellipse([c - r, c - r * 0.55, c + r * 0.6, c + r * 0.55], fill=_jitter((120, 125, 140), rng, 12))
        draw.polygon([(c + r * 0.5, c), (c + r, c - r * 0.5), (c + r, c + r * 0.5)], fill=(100, 105, 120))
    elif dish == 'greens':
        spots(16, (35, 130, 45), size / 10)
    else:  # mooncake
        draw.ellipse([c - r * 0.85, c - r * 0.85, c + r * 0.85, c + r * 0.85], fill=_jitter((150, 90, 35), rng, 12))
        draw.ellipse([c - r * 0.45, c - r * 0.45, c + r * 0.45, c + r * 0.45], outline=(100, 55, 20), width=2)
    return img


def _four_choices(pool, answer, rng):
    """The answer and three other options from `pool`, in random order."""
    choices = rng.sample([p for p in pool if p != answer], 3) + [answer]
    rng.shuffle(choices)
    return choices


def _letters(options, answer):
    return '|'.join(options), 'ABCD'[options.index(answer)]


def write_general(out_dir, n=1000, size=56, seed=0) -> Path:
    """Image folder + CSV (image, question, answer, options); half the rows are multiple choice."""
    out_dir = Path(out_dir)
    (out_dir / 'images').mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        shape, colour, position = rng.choice(SHAPES), rng.choice(sorted(COLOURS)), rng.choice(POSITIONS)
        name = f'g{seed}_{i:05d}.png'
        draw_shape(shape, colour, size, rng, position).save(out_dir / 'images' / name)
        if rng.random() < 0.5:
            question, answer, pool = f'What colour is the {shape}?', colour, sorted(COLOURS)
        else:
            question, answer, pool = f'Where is the {shape}?', position, POSITIONS
        options = ''
        if rng.random() < 0.5:
            options, answer = _letters(_four_choices(pool, answer, rng), answer)
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
        choices = _four_choices(DISHES, dish, rng)
        records.append({'question_id': f'dish-{seed}-{i}', 'question': DISH_QUESTION[0], 'question_en': DISH_QUESTION[1],
                        'choices': choices, 'choices_en': choices, 'answer': str(choices.index(dish)),
                        'food_name': dish, 'food_meta': {'food_file': name, 'food_name': dish, 'region': 'synthetic'}})
    path = out_dir / 'sivqa_synthetic.json'
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding='utf-8')
    return path
