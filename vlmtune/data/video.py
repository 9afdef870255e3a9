"""Video rows as the official InternVL fine-tuning code reads them (internvl-training notes §2.3 and §3.5): frames
sampled by its `get_frame_indices`, one tile per frame, and `<video>\\n` in the first turn replaced by
`Frame-1: <image>\\nFrame-2: <image>\\n...`.

* Training: the frame count is drawn uniformly from [min_frames, max_frames] per sample (8..32 officially), then
  `rand` sampling: the video's vlen frames cut into n = min(count, vlen) intervals at linspace(0, vlen, n + 1)
  (cast to int), one frame drawn from each interval but its last frame; when an interval is one frame wide, a
  sorted random subset of n frames instead; the list padded to the count by repeating its last index.
* `middle` takes each interval's middle, `fpsX` frames at (k + 1/2) / X seconds (evaluation's samplers).
* Files: mp4 / webm / mkv / avi / mov through decord (the official reader: its frame count and average fps; a
  `clip: [start, end]` in seconds narrows the video to int((end - start) * fps) frames from int(start * fps));
  GIFs frame by frame (a repeated index yields the frame once; `clip` ignored); a folder of frames, ordered by
  the number after the last '_' of each name, subsampled only when it holds more frames than asked.
"""
import random
import re
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from PIL import Image, ImageSequence

VIDEO_TAG = '<video>'
DECORD_SUFFIXES = ('.mp4', '.webm', '.mkv', '.avi', '.mov', '.m4v')
FRAME_SUFFIXES = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


class VideoError(ValueError):
    """A video that cannot be read (missing, undecodable, empty); the message names the file."""


def frame_indices(count: int, vlen: int, sample: str = 'rand', rng: random.Random = None,
                  np_rng: np.random.RandomState = None, fix_start: Optional[int] = None, input_fps: float = 1,
                  max_num_frames: int = -1) -> List[int]:
    """The official `get_frame_indices` (rng / np_rng stand for its global `random` / `np.random`)."""
    rng, np_rng = rng or random.Random(), np_rng or np.random.RandomState()
    if sample in ('rand', 'middle'):
        taken = min(count, vlen)
        bounds = np.linspace(start=0, stop=vlen, num=taken + 1).astype(int)
        ranges = [(int(bounds[k]), int(bounds[k + 1]) - 1) for k in range(taken)]
        if sample == 'rand':
            try:  # the draws before an empty interval are spent, as officially
                indices = [rng.choice(range(start, end)) for start, end in ranges]
            except IndexError:  # an interval one frame wide: a sorted random subset
                indices = sorted(int(i) for i in np_rng.permutation(vlen)[:taken])
        elif fix_start is not None:
            indices = [start + fix_start for start, _ in ranges]
        else:
            indices = [(start + end) // 2 for start, end in ranges]
        return indices + indices[-1:] * (count - len(indices))
    if sample.startswith('fps'):
        delta = 1 / float(sample[3:])
        seconds = np.arange(delta / 2, vlen / input_fps + delta / 2, delta)
        indices = [int(i) for i in np.around(seconds * input_fps).astype(int) if i < vlen]
        return indices[:max_num_frames] if max_num_frames > 0 else indices
    raise ValueError(f'frame sampling {sample!r}: use rand, middle or fpsX')


def frame_prompt(frames: int) -> str:
    """What `<video>\\n` becomes: one numbered `<image>` per frame, each on its own line."""
    return '\n'.join(f'Frame-{i + 1}: <image>' for i in range(frames)) + '\n'


def expand_video_tag(conversations: Sequence[dict], frames: int) -> List[dict]:
    """The first turn with `<video>\\n` (prepended when absent) replaced by the frame prompt."""
    first = dict(conversations[0])
    if VIDEO_TAG not in first['value']:
        first['value'] = VIDEO_TAG + '\n' + first['value']
    first['value'] = first['value'].replace(VIDEO_TAG + '\n', frame_prompt(frames))
    return [first] + [dict(turn) for turn in conversations[1:]]


def _frame_number(name: str) -> int:
    match = re.search(r'_(\d+)\.[^.]+$', name)
    return int(match.group(1)) if match else -1


def read_frames(path, count: int, sample: str = 'rand', rng: random.Random = None, clip=None,
                with_indices: bool = False):
    """`count` frames of a video file, GIF or folder of frames, as RGB images (a GIF or a short folder: fewer);
    with_indices: (frames, the frame indices taken)."""
    frames, indices = _read(Path(path), count, sample, rng, clip)
    return (frames, indices) if with_indices else frames


def _read(path: Path, count, sample, rng, clip):
    rng = rng or random.Random()
    np_rng = np.random.RandomState(rng.randrange(2 ** 32))
    if path.is_dir():
        names = sorted((p.name for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES),
                       key=lambda n: (_frame_number(n), n))
        if not names:
            raise VideoError(f'{path}: a folder of frames with no {"/".join(FRAME_SUFFIXES)} file')
        indices = list(range(len(names)))
        if len(names) > count:
            indices = frame_indices(count, len(names), sample, rng, np_rng)
        return [_rgb(path / names[i]) for i in indices], indices
    if not path.is_file():
        raise VideoError(f'{path}: video not found')
    if path.suffix.lower() == '.gif':
        with Image.open(path) as gif:
            vlen = getattr(gif, 'n_frames', 1)
            wanted = set(frame_indices(count, vlen, sample, rng, np_rng))
            frames = [frame.convert('RGB') for k, frame in enumerate(ImageSequence.Iterator(gif)) if k in wanted]
            return frames, sorted(wanted)
    return _decord_frames(path, count, sample, rng, np_rng, clip)


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert('RGB')


def _decord_frames(path, count, sample, rng, np_rng, clip) -> List[Image.Image]:
    import decord
    try:
        reader = decord.VideoReader(str(path), num_threads=1)
    except Exception as exc:  # decord raises its own DECORDError for any unreadable file
        raise VideoError(f'{path}: cannot decode ({type(exc).__name__}: {str(exc)[:200]})') from None
    vlen, fps = len(reader), reader.get_avg_fps()
    start = 0
    if clip:
        begin, end = clip
        start, vlen = int(begin * fps), int((end - begin) * fps)
        if start + vlen > len(reader):
            raise VideoError(f'{path}: clip {list(clip)} runs past the video\'s end ({len(reader)} frames at {fps:g} '
                             f'fps = {len(reader) / fps:.2f} s)')
    if vlen < 1:
        raise VideoError(f'{path}: no frames' + (f' in clip {list(clip)}' if clip else ''))
    indices = [start + i for i in frame_indices(count, vlen, sample, rng, np_rng, input_fps=fps)]
    return [Image.fromarray(frame) for frame in reader.get_batch(indices).asnumpy()], indices


def video_info(path) -> dict:
    """Frame count and duration from the container (decord), a GIF or a folder, for `data check`."""
    path = Path(path)
    if path.is_dir():
        return {'frames': sum(p.suffix.lower() in FRAME_SUFFIXES for p in path.iterdir()), 'seconds': None}
    if not path.is_file():
        raise VideoError(f'{path}: video not found')
    if path.suffix.lower() == '.gif':
        with Image.open(path) as gif:
            return {'frames': getattr(gif, 'n_frames', 1), 'seconds': None}
    import decord
    try:
        reader = decord.VideoReader(str(path), num_threads=1)
    except Exception as exc:
        raise VideoError(f'{path}: cannot decode ({type(exc).__name__}: {str(exc)[:200]})') from None
    fps = reader.get_avg_fps()
    return {'frames': len(reader), 'seconds': len(reader) / fps if fps else None}
