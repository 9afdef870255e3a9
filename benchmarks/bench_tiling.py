"""Benchmark: fast ``tile_image`` vs the straightforward per-tile torchvision pipeline.

Both paths get the same generated images (noise + gradient, mixed sizes), max_num=12,
image_size=448, thumbnail on. They are timed side by side in one run, alternating per
repetition so machine noise hits both alike, after a warm-up pass that also checks the
two outputs agree (atol 1e-6).

    python benchmarks/bench_tiling.py            # 24 images, 5 repetitions
    python benchmarks/bench_tiling.py --quick    # 12 images, 2 repetitions

Then the loader on JPEG files (`load_and_tile`, float32 and uint8 tiles) beside what it cannot avoid
(decode + the two PIL resizes), as a fraction of that limit; the uint8 tiles, normalised, equal the
float32 ones exactly.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from vlmtune.data.normalisation import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from vlmtune.data.tiling import (  # noqa: E402
    TilingConfig,
    choose_grid,
    load_and_tile,
    normalize_uint8,
    tile_image,
)

SIZES = [(800, 600), (1920, 1080), (300, 1000), (2000, 200), (1024, 1024), (640, 480)]


def make_images(count: int, seed: int = 0) -> list[Image.Image]:
    """Noise + gradient RGB images cycling through SIZES."""
    rng = np.random.default_rng(seed)
    images = []
    for k in range(count):
        w, h = SIZES[k % len(SIZES)]
        gx = np.linspace(0, 180, w, dtype=np.float32)[None, :, None]
        gy = np.linspace(0, 60, h, dtype=np.float32)[:, None, None]
        noise = rng.integers(0, 16, (h, w, 3)).astype(np.float32)
        images.append(Image.fromarray((gx + gy + noise).clip(0, 255).astype(np.uint8)))
    return images


class PerTileBaseline:
    """The official per-tile path: crop each tile, run the torchvision Compose on it."""

    def __init__(self, image_size: int, max_num: int):
        self.size, self.max_num = image_size, max_num
        self.transform = T.Compose(
            [
                T.Resize((image_size, image_size), interpolation=InterpolationMode.BICUBIC),
                T.ToTensor(),
                T.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
            ]
        )

    def __call__(self, img: Image.Image) -> torch.Tensor:
        s = self.size
        img = img.convert("RGB")
        # grid choice is shared (it is not what is being measured)
        cols, rows = choose_grid(img.width, img.height, 1, self.max_num, s)
        resized = img.resize((s * cols, s * rows))
        tiles = []
        for i in range(cols * rows):
            c, r = i % cols, i // cols
            tiles.append(resized.crop((c * s, r * s, (c + 1) * s, (r + 1) * s)))
        if len(tiles) != 1:
            tiles.append(img.resize((s, s)))
        return torch.stack([self.transform(t) for t in tiles])


class ResizeFloor:
    """Only the two PIL bicubic resizes both pipelines must do (the shared cost floor)."""

    def __init__(self, image_size: int, max_num: int):
        self.size, self.max_num = image_size, max_num

    def __call__(self, img: Image.Image) -> None:
        s = self.size
        cols, rows = choose_grid(img.width, img.height, 1, self.max_num, s)
        img.resize((s * cols, s * rows))
        if cols * rows != 1:
            img.resize((s, s))


class DecodeResizeLimit:
    """What loading a JPEG cannot avoid: decode, RGB, the two PIL resizes (the data path's limit)."""

    def __init__(self, image_size: int, max_num: int):
        self.floor = ResizeFloor(image_size, max_num)

    def __call__(self, path) -> None:
        with Image.open(path) as im:
            self.floor(im.convert("RGB"))


def jpeg_fractions(images, cfg: TilingConfig, reps: int) -> dict:
    """The loader on JPEG files beside its decode + resize limit: {path name: (img/s, fraction of the
    limit)}, best repetition per file. The uint8 tiles, normalised, must equal the float32 ones."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="bench-tiling-"))
    files = []
    for k, img in enumerate(images):
        files.append(folder / f"{k:02d}.jpg")
        img.save(files[-1], quality=90)
    for path in files:
        floats, raw = load_and_tile(path, cfg), load_and_tile(path, cfg, uint8=True)
        assert raw.dtype == torch.uint8 and torch.equal(normalize_uint8(raw), floats), path
    paths = {
        "decode + resizes (limit)": DecodeResizeLimit(cfg.image_size, cfg.max_num),
        "load_and_tile float32": lambda p: load_and_tile(p, cfg),
        "load_and_tile uint8": lambda p: load_and_tile(p, cfg, uint8=True),
    }
    best = {name: best_total(times) for name, times in time_alternating(paths, files, reps).items()}
    limit = best["decode + resizes (limit)"]
    return {name: (len(files) / seconds, limit / seconds) for name, seconds in best.items()}


def time_alternating(paths: dict, items, reps: int) -> dict:
    """{name: per repetition, the per-item seconds}; which path goes first alternates per repetition."""
    runs = {name: [] for name in paths}
    for rep in range(reps):
        for name in list(paths) if rep % 2 == 0 else list(paths)[::-1]:
            runs[name].append(time_pass(paths[name], items))
    return runs


def best_total(times) -> float:
    """Each item's fastest repetition, summed (robust to load spikes from other jobs)."""
    return sum(min(t[k] for t in times) for k in range(len(times[0])))


def time_pass(fn, images) -> list[float]:
    """Seconds per image for one pass over ``images``."""
    per_image = []
    for img in images:
        start = time.perf_counter()
        fn(img)
        per_image.append(time.perf_counter() - start)
    return per_image


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="12 images, 2 repetitions")
    parser.add_argument("--images", type=int, default=None, help="number of images (24)")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (5)")
    parser.add_argument("--max-num", type=int, default=12)
    parser.add_argument("--jpegs", type=int, default=8, help="JPEG files for the loader's fraction of its limit")
    parser.add_argument("--image-size", type=int, default=448)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch intra-op threads (1 = DataLoader worker)"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    n_images = args.images or (12 if args.quick else 24)
    reps = args.reps or (2 if args.quick else 5)

    images = make_images(n_images)
    cfg = TilingConfig(image_size=args.image_size, max_num=args.max_num, use_thumbnail=True)
    fast = lambda img: tile_image(img, cfg)  # noqa: E731
    baseline = PerTileBaseline(args.image_size, args.max_num)
    floor = ResizeFloor(args.image_size, args.max_num)
    base, new, shared = "per-tile torchvision", "tile_image (fast)", "PIL resizes only"
    paths = {base: baseline, new: fast, shared: floor}

    # warm-up + equivalence check
    worst = 0.0
    for img in images:
        a, b = fast(img), baseline(img)
        assert a.shape == b.shape, (a.shape, b.shape)
        worst = max(worst, (a - b).abs().max().item())
    assert worst <= 1e-6, f"fast path differs from per-tile path by {worst}"
    n_tiles = sum(fast(img).shape[0] for img in images)

    runs = time_alternating(paths, images, reps)

    print(
        f"{n_images} images, {n_tiles} tiles, max_num={args.max_num}, "
        f"S={args.image_size}, reps={reps}, torch threads={torch.get_num_threads()}, "
        f"max |diff|={worst:.2e}"
    )
    print(f"{'pipeline':<22}{'best img/s':>12}{'median img/s':>14}{'ms/img (best)':>15}")
    best_rate, median_rate = {}, {}
    for name, times in runs.items():
        best = best_total(times)
        best_rate[name] = n_images / best
        median_rate[name] = n_images / statistics.median(sum(t) for t in times)
        print(
            f"{name:<22}{best_rate[name]:>12.1f}{median_rate[name]:>14.1f}"
            f"{1e3 * best / n_images:>15.1f}"
        )

    # per-size breakdown (best repetition per image, summed over images of that size)
    print(f"\n{'size':<12}{'tiles':>6}{'per-tile ms':>13}{'fast ms':>10}{'resize ms':>11}{'speed-up':>10}")
    for w, h in SIZES:
        idx = [k for k, img in enumerate(images) if img.size == (w, h)]
        if not idx:
            continue
        slow, quick, resize = (
            statistics.mean(1e3 * min(t[k] for t in runs[name]) for k in idx)
            for name in (base, new, shared)
        )
        tiles = fast(images[idx[0]]).shape[0]
        print(
            f"{w}x{h:<7}{tiles:>6}{slow:>13.1f}{quick:>10.1f}{resize:>11.1f}"
            f"{slow / quick:>9.2f}x"
        )

    print(
        f"\nspeed-up: {best_rate[new] / best_rate[base]:.2f}x (best), "
        f"{median_rate[new] / median_rate[base]:.2f}x (median)"
    )
    # What the fast path can influence: everything except the mandated PIL resizes.
    floor_s = 1 / best_rate[shared]
    extra_base, extra_new = 1 / best_rate[base] - floor_s, 1 / best_rate[new] - floor_s
    print(
        f"shared PIL resize floor: {1e3 * floor_s:.1f} ms/img; work beyond it: "
        f"{1e3 * extra_base:.1f} -> {1e3 * extra_new:.1f} ms/img "
        f"({extra_base / max(extra_new, 1e-9):.1f}x)"
    )

    jpegs = images[: args.jpegs]
    print(f"\n{len(jpegs)} JPEGs (quality 90), decoded from disk each time:")
    print(f"{'path':<26}{'img/s':>8}{'of the limit':>14}")
    for name, (rate, fraction) in jpeg_fractions(jpegs, cfg, reps).items():
        print(f"{name:<26}{rate:>8.1f}{fraction:>14.2f}")


if __name__ == "__main__":
    main()
