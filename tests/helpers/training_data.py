"""A small learnable image-QA set for training tests: solid-colour images, 'What colour is it?'.
The colour words are chosen to tokenize to the same length in the tiny tokenizers (checked by
`assert_equal_trained_tokens`), so every sample trains the same number of tokens and per-process
mean losses average to the global mean across process counts."""
import json
import random
from pathlib import Path

from PIL import Image

COLOURS = {'green': (30, 200, 40), 'blue': (30, 40, 220), 'white': (250, 250, 250)}


def make_colour_dataset(folder, n=32, seed=0, name='train.jsonl'):
    folder = Path(folder)
    images = folder / 'images'
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        colour = rng.choice(sorted(COLOURS))
        jitter = tuple(max(0, min(255, c + rng.randint(-20, 20))) for c in COLOURS[colour])
        size = rng.choice([(56, 56), (112, 56), (56, 112)])
        file = f'{name.split(".")[0]}_{i:03d}.png'
        Image.new('RGB', size, jitter).save(images / file)
        rows.append({'id': f'{name}-{i}', 'image': file, 'conversations': [
            {'from': 'human', 'value': '<image>\nWhat colour is it?'}, {'from': 'gpt', 'value': colour}]})
    path = folder / name
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return path, images


def assert_equal_trained_tokens(dataset):
    counts = {int((dataset[i]['labels'] != -100).sum()) for i in range(len(dataset))}
    assert len(counts) == 1, f'samples train different token counts: {counts}'
