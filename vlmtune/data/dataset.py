"""Lazy conversation dataset over JSONL / JSON (+ image root).

Rows are read on demand from byte offsets. Per-sample token lengths (needed by the length-grouped
sampler and packing) are computed once from image headers (no decoding) and tokenization, then
cached beside the data, so a later start-up on 100k rows reads one small file. Rows that cannot be
trained (bad JSON, missing image, over-length, ...) are listed with their reason, never dropped
silently.
"""
import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import List

import torch
from PIL import Image
from torch.utils.data import Dataset
from tqdm import tqdm

from .data_spec import ONE_TILE, DataSpec, row_image_paths, row_video
from .image.orientation import apply_rule
from .sample_encoding import SampleRejected
from .video import read_frames

CACHE_VERSION = 2


def index_rows(path: Path) -> List[int]:
    """Byte offsets of the non-blank lines of a JSONL file."""
    offsets, position = [], 0
    with open(path, 'rb') as handle:
        for line in handle:
            if line.strip():
                offsets.append(position)
            position += len(line)
    return offsets


class ConversationDataset(Dataset):
    def __init__(self, data_path, image_root, spec: DataSpec, cache_dir=None, progress: bool = True, seed: int = 0):
        self.data_path = Path(data_path)
        if not self.data_path.exists():
            raise FileNotFoundError(f'{self.data_path}: dataset file not found')
        self.image_root = Path(image_root) if image_root else self.data_path.parent
        self.spec = spec
        self.rng = random.Random(seed)
        if self.data_path.suffix == '.json':
            self._rows = json.loads(self.data_path.read_text(encoding='utf-8'))
            self._offsets = None
        else:
            self._rows, self._offsets = None, index_rows(self.data_path)
        self.cache_path = self._cache_path(cache_dir)
        lengths, self.rejects = self._load_or_compute_lengths(progress)
        self.indices = [i for i, n in enumerate(lengths) if n is not None]
        self.lengths = [lengths[i] for i in self.indices]

    # --- rows -------------------------------------------------------------------------------
    def num_rows(self) -> int:
        return len(self._rows) if self._rows is not None else len(self._offsets)

    def row(self, raw_index: int) -> dict:
        if self._rows is not None:
            return self._rows[raw_index]
        with open(self.data_path, 'rb') as handle:
            handle.seek(self._offsets[raw_index])
            return json.loads(handle.readline().decode('utf-8'))

    def sample_length(self, row: dict) -> int:
        """Token count of a row from image headers only; raises SampleRejected / OSError with a reason."""
        return self.spec.token_length(row, self.image_root, self.spec.max_length)

    # --- length cache -------------------------------------------------------------------------
    def _cache_key(self) -> str:
        stat = self.data_path.stat()
        parts = [CACHE_VERSION, type(self).__name__, str(self.data_path.resolve()), stat.st_size, stat.st_mtime_ns, str(self.image_root),
                 self.spec.template, self.spec.image_tokens, self.spec.image_processor, self.spec.max_length,
                 self.spec.system_message, self.spec.exif, self.spec.max_frames, self.spec.min_frames,
                 type(self.spec.tokenizer).__name__,
                 len(self.spec.tokenizer), self.spec.tokenizer.name_or_path]
        return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]

    def _cache_path(self, cache_dir) -> Path:
        folder = Path(cache_dir) if cache_dir else self.data_path.parent / '.vlmtune_cache'
        return folder / f'{self.data_path.stem}.lengths-{self._cache_key()}.json'

    def _load_or_compute_lengths(self, progress: bool):
        if self.cache_path.exists():
            cached = json.loads(self.cache_path.read_text(encoding='utf-8'))
            return cached['lengths'], cached['rejects']
        lengths, rejects = [], []
        rows = range(self.num_rows())
        for i in tqdm(rows, desc=f'lengths {self.data_path.name}', disable=not progress or len(rows) < 1000):
            try:
                lengths.append(self.sample_length(self.row(i)))
            except (SampleRejected, OSError, KeyError, TypeError, ValueError) as exc:
                lengths.append(None)
                rejects.append({'row': i + 1, 'reason': f'{type(exc).__name__}: {exc}'})
        self._write_cache(lengths, rejects)
        return lengths, rejects

    def _write_cache(self, lengths, rejects) -> None:
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.cache_path.parent, suffix='.tmp')
            with os.fdopen(fd, 'w', encoding='utf-8') as handle:
                json.dump({'lengths': lengths, 'rejects': rejects}, handle)
            os.replace(tmp, self.cache_path)
        except OSError:
            pass  # a read-only data folder only costs the cache

    # --- samples ------------------------------------------------------------------------------
    def __len__(self):
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        return self.item(self.indices[index])

    def item(self, raw_index: int) -> dict:
        """The sample of a row by its index in the file (a kept row)."""
        row = self.row(raw_index)
        if row_video(row) is not None:
            return self._video_item(row)
        pixel_values, image_flags, sizes, layouts = self.pixels(row)
        encoded = self.spec.encode(row, layouts, self.spec.max_length)
        return _sample(encoded, pixel_values, image_flags, sizes)

    def pixels(self, row: dict) -> tuple:
        """(tiles, their image flags, each image's (width, height), each image's layout) of an image or text row."""
        paths = row_image_paths(row)
        processor, tiles, layouts, sizes = self.spec.image_processor, [], [], []
        raw = {'uint8': True} if self.spec.pixels_as_uint8 else {}
        for rel in paths:
            with Image.open(self.image_root / rel) as opened:
                img = apply_rule(opened, self.spec.exif)
                tiles.append(processor.process(img, len(paths), self.rng, self.spec.jpeg_augment, **raw))
                layouts.append(processor.layout(*img.size, n_images=len(paths)))
                sizes.append(img.size)
        if paths:
            pixel_values = torch.cat(tiles)
            return pixel_values, torch.ones(len(pixel_values), dtype=torch.long), sizes, layouts
        # text-only: a white image whose features are dropped (image_flags 0)
        pixel_values = processor.blank(**raw)
        return pixel_values, torch.zeros(len(pixel_values), dtype=torch.long), sizes, layouts

    def _video_item(self, row: dict) -> dict:
        """The official video sample: a frame count drawn in [min_frames, max_frames], `rand` frames, one tile each."""
        spec = self.spec
        raw = {'uint8': True} if spec.pixels_as_uint8 else {}
        count = self.rng.randint(spec.min_frames, spec.max_frames)
        frames = read_frames(self.image_root / row_video(row), count, 'rand', self.rng, row.get('clip'))
        tiles = [spec.image_processor.single_tile(frame, self.rng if spec.jpeg_augment else None, **raw)
                 for frame in frames]
        encoded = spec.encode(spec.video_row(row, len(frames)), [ONE_TILE] * len(frames), spec.max_length)
        return _sample(encoded, torch.cat(tiles), torch.ones(len(frames), dtype=torch.long),
                       [frame.size for frame in frames])


def image_sizes(sizes) -> torch.Tensor:
    return torch.tensor(sizes, dtype=torch.long).reshape(-1, 2)  # (width, height) per image


def _sample(encoded, pixel_values, image_flags, sizes) -> dict:
    return {'input_ids': torch.tensor(encoded.input_ids), 'labels': torch.tensor(encoded.labels),
            'pixel_values': pixel_values, 'image_flags': image_flags,
            'image_sizes': image_sizes(sizes)}
