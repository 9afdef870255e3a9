"""`vlmtune data show`: what the model sees for one sample: tile grid, prompt, token count and the
trained spans, so users can debug templates and masking."""
import json
import os
import random
from pathlib import Path

from PIL import Image

from .data_spec import ONE_TILE, DataSpec, row_image_paths, row_video
from .image.orientation import size_under
from .image.tokens import IMAGE_TAG
from .rejects import IGNORE_INDEX
from .video import read_frames


def read_row(path, index: int) -> dict:
    path = Path(path)
    if path.suffix == '.json':
        rows = json.loads(path.read_text(encoding='utf-8'))
        if not 0 <= index < len(rows):
            raise IndexError(f'{path}: index {index} out of range (0..{len(rows) - 1})')
        return rows[index]
    with open(path, encoding='utf-8') as handle:
        lines = [line for line in handle if line.strip()]
    if not 0 <= index < len(lines):
        raise IndexError(f'{path}: index {index} out of range (0..{len(lines) - 1})')
    return json.loads(lines[index])


def prompt_text(spec: DataSpec, row: dict, images) -> str:
    """The exact text the tokenizer sees, image blocks shown as `<img><IMG_CONTEXT>*N</img>`."""
    text = spec.template.render(spec.template.prepare(row['conversations'], len(images)), spec.system_message)
    tokens = spec.image_tokens
    for image in images:
        text = text.replace(IMAGE_TAG, f'{tokens.start}{tokens.context}*{tokens.count(image)}{tokens.end}', 1)
    return text


def trained_spans(tokenizer, ids, labels):
    spans, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            current.append(token)
        elif current:
            spans.append(tokenizer.decode(current, spaces_between_special_tokens=False))
            current = []
    if current:
        spans.append(tokenizer.decode(current))
    return spans


def describe_video(row: dict, image_root, spec: DataSpec, seed: int = 0) -> tuple:
    """(the row with its frames numbered, one tile per frame, what was taken): one draw as training draws."""
    path = Path(image_root) / row_video(row)
    info = spec.check_video(path, row.get('clip'))
    rng = random.Random(seed)
    count = rng.randint(spec.min_frames, spec.max_frames)
    frames, indices = read_frames(path, count, 'rand', rng, row.get('clip'), with_indices=True)
    taken = {'video': row_video(row), 'frames': info['frames'], 'seconds': info['seconds'], 'clip': row.get('clip'),
             'drawn': count, 'indices': indices, 'range': [spec.min_frames, spec.max_frames]}
    return spec.video_row(row, len(frames)), [ONE_TILE] * len(frames), taken


def describe_sample(data_path, image_root, spec: DataSpec, index=0) -> dict:
    row = read_row(data_path, index)
    video = None
    if row_video(row) is not None:
        row, layouts, video = describe_video(row, image_root, spec)
    else:
        layouts = spec.image_layouts(row, image_root)
    grids = []
    for rel, layout in zip(row_image_paths(row), layouts):
        with Image.open(Path(image_root) / rel) as img:
            width, height = size_under(img, spec.exif)  # the size training tiles under the model's EXIF rule
        cols, rows_ = spec.image_processor.grid(width, height, len(layouts))
        grids.append({'image': rel, 'size': [width, height], 'grid': [cols, rows_], 'tiles': layout.tiles})
    encoded = spec.encode(row, layouts)
    prompt = prompt_text(spec, row, layouts)
    bos = spec.tokenizer.bos_token
    if encoded.input_ids[:1] == [spec.tokenizer.bos_token_id] and not prompt.startswith(bos):  # the tokenizer's BOS
        prompt = bos + prompt
    return {'id': row.get('id'), 'template': spec.template.name, 'images': grids, 'video': video,
            'tile_count': sum(layout.tiles for layout in layouts),
            'prompt': prompt, 'token_count': len(encoded.input_ids),
            'trained_token_count': sum(label != IGNORE_INDEX for label in encoded.labels),
            'trained_spans': trained_spans(spec.tokenizer, encoded.input_ids, encoded.labels),
            'input_ids': encoded.input_ids, 'labels': encoded.labels, 'warnings': encoded.warnings}


def draw_boxes(row: dict, image_root, out) -> int:
    """The row's first image with every answer's <ref>/<box> drawn (0..1000 scaled to the image), written to `out`
    (a PNG, through a temporary file); returns the number of boxes drawn."""
    from PIL import ImageDraw
    from .grounding import answer_boxes
    paths = row_image_paths(row)
    if not paths:
        raise ValueError(f'row {row.get("id")!r} has no image to draw its boxes on')
    with Image.open(Path(image_root) / paths[0]) as opened:
        image = opened.convert('RGB')
    draw, drawn = ImageDraw.Draw(image), 0
    colours = ['red', 'lime', 'blue', 'orange', 'magenta', 'cyan']
    for turn in row['conversations']:
        if turn['from'] != 'gpt':
            continue
        for phrase, boxes in answer_boxes(turn['value']):
            for box in boxes or []:
                colour = colours[drawn % len(colours)]
                x1, y1, x2, y2 = (v / 1000 * size for v, size in zip(box, image.size * 2))
                draw.rectangle([x1, y1, x2, y2], outline=colour, width=max(1, image.width // 200))
                draw.text((x1 + 2, y1 + 1), phrase, fill=colour)
                drawn += 1
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f'.{out.name}.tmp')
    image.save(temporary, format='PNG')
    os.replace(temporary, out)
    return drawn


def format_sample(info: dict) -> str:
    lines = [f"sample {info['id']!r}   template {info['template']}"]
    for image in info['images']:
        lines.append(f"image {image['image']} {image['size'][0]}x{image['size'][1]} -> grid "
                     f"{image['grid'][0]}x{image['grid'][1]}, {image['tiles']} tiles")
    video = info.get('video')
    if video:
        length = f", {video['seconds']:.1f} s" if video['seconds'] else ''
        lines.append(f"video {video['video']}: {video['frames']} frames{length}"
                     + (f", clip {video['clip']}" if video['clip'] else '')
                     + f"; training draws {video['range'][0]}..{video['range'][1]} frames, this draw "
                       f"{video['drawn']}: frames {video['indices']} (one tile each)")
    lines += [f"tiles {info['tile_count']}   tokens {info['token_count']}   trained {info['trained_token_count']}",
              '--- prompt ---', info['prompt'], '--- trained spans ---']
    lines += [f'[{i}] {span!r}' for i, span in enumerate(info['trained_spans'])]
    lines += [f'warning: {w}' for w in info['warnings']]
    return '\n'.join(lines)
