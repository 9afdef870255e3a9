"""Benchmark: the training loader on a meta-file mixture (single images, two-image rows, video frames from an mp4)
beside the single-file image path on the same images, in one run: samples/s and decoded images per second
(a video frame counts as one image). The mixture should be no slower per image.

    python benchmarks/bench_mixture_loader.py            # 48 rows per kind, 3 passes
    python benchmarks/bench_mixture_loader.py --quick    # 12 rows per kind, 2 passes
"""
import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from vlmtune.engine.data import build_train_dataset  # noqa: E402
from vlmtune.tiny import TinySpec, make_tiny_folder  # noqa: E402

SIZES = [(800, 600), (640, 480), (1024, 768), (448, 448)]
ANSWER = [{'from': 'human', 'value': '<image>\nWhat is it?'}, {'from': 'gpt', 'value': 'a picture'}]


def write_data(root: Path, n: int) -> tuple:
    rng = np.random.default_rng(0)
    (root / 'images').mkdir(parents=True)
    names = []
    for k in range(2 * n):
        w, h = SIZES[k % len(SIZES)]
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / 'images' / f'{k}.jpg', quality=90)
        names.append(f'{k}.jpg')
    import cv2
    writer = cv2.VideoWriter(str(root / 'images' / 'clip.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 10, (640, 480))
    for k in range(60):
        writer.write(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8))
    writer.release()

    def rows(kind):
        if kind == 'single':
            return [{'id': f's{k}', 'image': names[k], 'conversations': ANSWER} for k in range(2 * n)]
        if kind == 'multi':
            two = [{'from': 'human', 'value': 'Image-1: <image>\nImage-2: <image>\nSame?'}, ANSWER[1]]
            return [{'id': f'm{k}', 'image': [names[2 * k], names[2 * k + 1]], 'conversations': two} for k in range(n)]
        return [{'id': f'v{k}', 'video': 'clip.mp4', 'conversations': [
            {'from': 'human', 'value': '<video>\nWhat happens?'}, ANSWER[1]]} for k in range(n // 4)]
    files = {}
    for kind in ('single', 'multi', 'video'):
        files[kind] = root / f'{kind}.jsonl'
        files[kind].write_text(''.join(json.dumps(r) + '\n' for r in rows(kind)))
    meta = {kind: {'root': str(root / 'images'), 'annotation': str(files[kind]), 'repeat_time': 1}
            for kind in ('single', 'multi', 'video')}
    (root / 'meta.json').write_text(json.dumps(meta))
    return files['single'], root / 'meta.json', root / 'images'


def timed(dataset, passes: int) -> tuple:
    """(samples/s, images/s) over `passes` full passes; images = decoded images / frames (tiles not counted)."""
    per_pass = []
    for _ in range(passes):
        started, decoded = time.perf_counter(), 0
        for i in range(len(dataset)):
            sample = dataset[i]
            decoded += sample['image_sizes'].shape[0]
        per_pass.append((len(dataset) / (time.perf_counter() - started), decoded / (time.perf_counter() - started)))
    return statistics.median(p[0] for p in per_pass), statistics.median(p[1] for p in per_pass)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', type=int, default=48)
    parser.add_argument('--passes', type=int, default=3)
    parser.add_argument('--quick', action='store_true')
    args = parser.parse_args()
    rows, passes = (12, 2) if args.quick else (args.rows, args.passes)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = make_tiny_folder(root / 'tiny', TinySpec())
        single, meta, images = write_data(root / 'data', rows)
        kwargs = dict(max_length=16384, max_tiles=6, frames=(8, 8), cache_dir=root / 'cache')
        one_file = build_train_dataset(folder, str(single), str(images), **kwargs)
        mixture = build_train_dataset(folder, meta=str(meta), **kwargs)
        timed(one_file, 1), timed(mixture, 1)  # warm-up: file caches, decoders
        results = {}
        for _ in range(passes):  # alternate, so machine noise hits both alike
            for name, dataset in (('single file, images', one_file), ('meta mixture', mixture)):
                results.setdefault(name, []).append(timed(dataset, 1))
        print('| loader | samples | samples/s | images/s | per image vs single file |\n|---|---|---|---|---|')
        base = statistics.median(r[1] for r in results['single file, images'])
        for name, dataset in (('single file, images', one_file), ('meta mixture', mixture)):
            samples_s = statistics.median(r[0] for r in results[name])
            images_s = statistics.median(r[1] for r in results[name])
            print(f'| {name} | {len(dataset)} | {samples_s:.1f} | {images_s:.1f} | {images_s / base:.2f}x |')


if __name__ == '__main__':
    main()
