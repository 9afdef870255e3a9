"""Video rows as the official fine-tuning code reads them (data/video.py): frame indices by its get_frame_indices on
hand-worked cases, the frame prompt strings, an mp4 (decord), a GIF and a folder of frames made here and read back
frame for frame, and a video row that trains a step and chats."""
import json
import random
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vlmtune.data.video import expand_video_tag, frame_indices, frame_prompt, read_frames

LEVELS = 8   # frame k of a test video is a flat grey of k * LEVELS: a decoded frame says which frame it is


def frame_number(image: Image.Image) -> int:
    return round(float(np.asarray(image, dtype=np.float32).mean()) / LEVELS)


# (count, vlen, sample, extra, expected) -- the intervals are linspace(0, vlen, n + 1) cast to int
CASES = [
    (8, 100, 'middle', {}, [5, 18, 30, 43, 55, 68, 80, 93]),         # the notes' (0,11) (12,24) ... (87,99)
    (4, 16, 'middle', {}, [1, 5, 9, 13]),                            # (0,3) (4,7) (8,11) (12,15)
    (32, 32, 'middle', {}, list(range(32))),                         # one frame per interval
    (8, 3, 'middle', {}, [0, 1, 2, 2, 2, 2, 2, 2]),                  # fewer frames than asked: the last repeats
    (4, 16, 'middle', {'fix_start': 1}, [1, 5, 9, 13]),              # fix_start: interval start + 1... (0+1, 4+1 ...)
    (3, 30, 'fps1', {'input_fps': 10}, [5, 15, 25]),                 # 3 s at 10 fps, a frame at 0.5, 1.5, 2.5 s
    (3, 100, 'fps1', {'input_fps': 25}, [12, 38, 62, 88]),           # numpy rounds half to even: 12.5 -> 12
    (3, 100, 'fps1', {'input_fps': 25, 'max_num_frames': 2}, [12, 38]),
    (2, 10, 'fps0.5', {'input_fps': 1}, [1, 3, 5, 7, 9]),            # every 2 s, from 1 s
]


@pytest.mark.parametrize('count, vlen, sample, extra, expected', CASES)
def test_frame_indices_by_hand(count, vlen, sample, extra, expected):
    if 'fix_start' in extra:
        expected = [start + extra['fix_start'] for start in (0, 4, 8, 12)]
    assert frame_indices(count, vlen, sample, **extra) == expected


def test_rand_draws_inside_each_interval_but_its_last_frame():
    bounds = [0, 12, 25, 37, 50, 62, 75, 87, 100]   # vlen 100, 8 frames
    seen = [set() for _ in range(8)]
    for seed in range(300):
        picked = frame_indices(8, 100, 'rand', random.Random(seed), np.random.RandomState(seed))
        for k, index in enumerate(picked):
            seen[k].add(index)
    for k in range(8):  # every frame of range(a_k, a_{k+1} - 1) is drawn, never a_{k+1} - 1
        assert seen[k] == set(range(bounds[k], bounds[k + 1] - 1)), k
    # the official draws with the same seed: random.choice(range(start, end)) per interval, in order
    rng = random.Random(7)
    assert frame_indices(8, 100, 'rand', random.Random(7)) == [rng.choice(range(a, b - 1))
                                                               for a, b in zip(bounds, bounds[1:])]


@pytest.mark.parametrize('count, vlen', [(8, 10), (8, 3), (5, 9)])
def test_rand_falls_back_to_a_sorted_subset_when_an_interval_is_one_frame(count, vlen):
    picked = frame_indices(count, vlen, 'rand', random.Random(0), np.random.RandomState(3))
    subset = sorted(np.random.RandomState(3).permutation(vlen)[:min(count, vlen)].tolist())
    assert picked == subset + subset[-1:] * (count - len(subset))


def test_frame_prompt_strings():
    assert frame_prompt(3) == 'Frame-1: <image>\nFrame-2: <image>\nFrame-3: <image>\n'
    turns = [{'from': 'human', 'value': '<video>\nWhat happens?'}, {'from': 'gpt', 'value': 'A ball rolls.'}]
    assert expand_video_tag(turns, 2)[0]['value'] == 'Frame-1: <image>\nFrame-2: <image>\nWhat happens?'
    assert expand_video_tag([{'from': 'human', 'value': 'Describe it.'}], 1)[0]['value'] == \
        'Frame-1: <image>\nDescribe it.'
    assert turns[0]['value'] == '<video>\nWhat happens?'   # the row itself is left as it was


def write_mp4(path, frames=30, fps=10, size=(64, 48)):
    import cv2
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, size)
    for k in range(frames):
        writer.write(np.full((size[1], size[0], 3), k * LEVELS, np.uint8))
    writer.release()
    return path


def test_an_mp4_a_gif_and_a_folder_read_frame_for_frame(tmp_path):
    mp4 = write_mp4(tmp_path / 'clip.mp4')
    frames = read_frames(mp4, 8, 'middle')
    assert [frame_number(f) for f in frames] == frame_indices(8, 30, 'middle')
    clipped = read_frames(mp4, 4, 'middle', clip=[1.0, 2.0])   # 10 fps: frames 10..19
    assert [frame_number(f) for f in clipped] == [10 + i for i in frame_indices(4, 10, 'middle')]
    gif = tmp_path / 'clip.gif'
    images = [Image.new('RGB', (40, 30), (k * LEVELS,) * 3) for k in range(12)]
    images[0].save(gif, save_all=True, append_images=images[1:], duration=100, loop=0)
    assert [frame_number(f) for f in read_frames(gif, 4, 'middle')] == frame_indices(4, 12, 'middle')
    assert [frame_number(f) for f in read_frames(gif, 16, 'middle')] == list(range(12))  # repeats collapse
    folder = tmp_path / 'frames'
    folder.mkdir()
    for k in range(12):   # numbered from 1; name order alone would put frame_10 before frame_2
        images[k].save(folder / f'frame_{k + 1}.png')
    assert [frame_number(f) for f in read_frames(folder, 4, 'middle')] == frame_indices(4, 12, 'middle')
    assert [frame_number(f) for f in read_frames(folder, 20, 'rand')] == list(range(12))  # a short folder: all


def test_a_video_row_trains_and_chats(tmp_path, tiny_folder):
    from vlmtune.data.collate import pad_collate
    from vlmtune.engine.data import build_train_dataset
    from vlmtune.formats import load
    write_mp4(tmp_path / 'clip.mp4')
    rows = [{'id': 'v', 'video': 'clip.mp4', 'conversations': [
        {'from': 'human', 'value': '<video>\nWhat colour is it?'}, {'from': 'gpt', 'value': 'grey'}]},
        {'id': 'v-clip', 'video': 'clip.mp4', 'clip': [0.5, 2.5], 'conversations': [
            {'from': 'human', 'value': 'What colour is it?'}, {'from': 'gpt', 'value': 'grey'}]},
        {'id': 'short', 'video': 'clip.mp4', 'conversations': [{'from': 'human', 'value': '<video>\nQ'}]}]
    data = tmp_path / 'videos.jsonl'
    data.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    folder = tiny_folder()
    dataset = build_train_dataset(folder, str(data), str(tmp_path), max_length=1024, frames=(2, 4), seed=0)
    assert len(dataset) == 2 and dataset.rejects[0]['row'] == 3   # no answer to train: rejected with its reason
    samples = [dataset[0], dataset[1]]
    for sample in samples:
        frames = sample['pixel_values'].shape[0]
        assert 2 <= frames <= 4 and sample['image_flags'].tolist() == [1] * frames
    model, tokenizer = load(folder)
    context = model.img_context_token_id
    assert [int((s['input_ids'] == context).sum()) for s in samples] == \
        [s['pixel_values'].shape[0] * model.num_image_token for s in samples]
    model.train()
    batch = pad_collate(samples, tokenizer.pad_token_id)
    loss = model(**batch, return_logits=False).loss
    loss.backward()
    assert torch.isfinite(loss) and model.llm.get_input_embeddings().weight.grad is not None
    model.eval()
    pixels = torch.cat([model.image_processor.single_tile(f) for f in read_frames(tmp_path / 'clip.mp4', 3, 'middle')])
    answer = model.chat(tokenizer, pixels, frame_prompt(3) + 'What colour is it?', dict(max_new_tokens=4),
                        num_patches_list=[1, 1, 1])
    assert isinstance(answer, str)


def test_bad_videos_are_rejected_with_the_file_and_the_fix(tmp_path, tiny_folder):
    from vlmtune.engine.data import build_train_dataset
    write_mp4(tmp_path / 'clip.mp4')
    (tmp_path / 'broken.mp4').write_bytes(b'not a video at all' * 10)
    (tmp_path / 'empty.mp4').write_bytes(b'')
    Image.new('RGB', (8, 8)).save(tmp_path / 'few.gif', save_all=True, append_images=[Image.new('RGB', (8, 8), 'red')])
    answer = [{'from': 'human', 'value': '<video>\nQ'}, {'from': 'gpt', 'value': 'A'}]
    rows = [{'video': 'clip.mp4'}, {'video': 'broken.mp4'}, {'video': 'empty.mp4'}, {'video': 'missing.mp4'},
            {'video': 'clip.mp4', 'clip': [2.0, 9.0]}, {'video': 'clip.mp4', 'clip': [2.0, 1.0]}, {'video': 'few.gif'}]
    data = tmp_path / 'videos.jsonl'
    data.write_text(''.join(json.dumps(dict(r, id=str(k), conversations=answer)) + '\n' for k, r in enumerate(rows)))
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'data', 'check', str(data), '--images', str(tmp_path),
                           '--min-frames', '4', '--quiet'], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    checked = [json.loads(line) for line in (tmp_path / 'videos.rejects.jsonl').read_text().splitlines()]
    assert [(r['row'], r['kind']) for r in checked] == [(2, 'video_unreadable'), (3, 'video_unreadable'),
                                                        (4, 'video_unreadable'), (5, 'bad_clip'), (6, 'bad_clip'),
                                                        (7, 'video_too_short')]
    assert 'videos                         1  (30..30 frames, 3.0..3.0 s)' in done.stdout
    dataset = build_train_dataset(tiny_folder(), str(data), str(tmp_path), max_length=1024, frames=(4, 4))
    reasons = {r['row']: r['reason'] for r in dataset.rejects}
    assert len(dataset) == 1 and sorted(reasons) == [2, 3, 4, 5, 6, 7], reasons
    assert 'broken.mp4: cannot decode' in reasons[2] and 'empty.mp4: cannot decode' in reasons[3]
    assert 'missing.mp4: video not found' in reasons[4]
    assert 'clip [2.0, 9.0] runs past the video\'s end (3.00 s)' in reasons[5]
    assert 'is not [start, end] in seconds with start < end' in reasons[6]
    assert 'few.gif: 2 frame(s), fewer than min_frames 4; drop the row or lower min_frames' in reasons[7]


def test_data_show_says_which_frames_were_taken(tmp_path, tiny_folder):
    write_mp4(tmp_path / 'clip.mp4')
    row = {'id': 'v', 'video': 'clip.mp4', 'conversations': [{'from': 'human', 'value': '<video>\nWhat colour?'},
                                                            {'from': 'gpt', 'value': 'grey'}]}
    (tmp_path / 'v.jsonl').write_text(json.dumps(row) + '\n')
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'data', 'show', str(tmp_path / 'v.jsonl'), '--images',
                           str(tmp_path), '--model', str(tiny_folder())], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith('video clip.mp4'))
    drawn = int(line.split('this draw ')[1].split(':')[0])
    assert 8 <= drawn <= 32 and line.startswith('video clip.mp4: 30 frames, 3.0 s; training draws 8..32 frames')
    assert f'tiles {drawn} ' in done.stdout
    assert 'Frame-1: <img><IMG_CONTEXT>*' in done.stdout and f'Frame-{drawn}: <img>' in done.stdout
    assert f'Frame-{drawn + 1}:' not in done.stdout
