"""`vlmtune data show`: what the model sees for one sample: tile grid, prompt, token count and the
trained spans, so users can debug templates and masking."""
import json
from pathlib import Path

from PIL import Image

from .data_spec import DataSpec, row_image_paths
from .sample_encoding import IGNORE_INDEX, IMG_CONTEXT, IMG_END, IMG_START, prepare_conversations
from .templates import render_prompt
from .tiling import choose_grid


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


def prompt_text(spec: DataSpec, row: dict, tile_counts) -> str:
    """The exact text the tokenizer sees, image blocks shown as `<img><IMG_CONTEXT>*N</img>`."""
    text = render_prompt(spec.template, prepare_conversations(row['conversations'], len(tile_counts)),
                         spec.system_message)
    for tiles in tile_counts:
        text = text.replace('<image>', f'{IMG_START}{IMG_CONTEXT}*{spec.num_image_token * tiles}{IMG_END}', 1)
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


def describe_sample(data_path, image_root, model_folder, index=0, max_tiles=None, max_length=4096) -> dict:
    spec = DataSpec.from_folder(model_folder, max_tiles=max_tiles, max_length=max_length)
    row = read_row(data_path, index)
    counts = spec.tile_counts(row, image_root)
    grids = []
    cfg = spec.tiling_for(len(counts))
    for rel, count in zip(row_image_paths(row), counts):
        with Image.open(Path(image_root) / rel) as img:
            width, height = img.size
        cols, rows_ = choose_grid(width, height, cfg.min_num, cfg.max_num, cfg.image_size) if cfg.dynamic else (1, 1)
        grids.append({'image': rel, 'size': [width, height], 'grid': [cols, rows_], 'tiles': count})
    encoded = spec.encode(row, counts)
    prompt = prompt_text(spec, row, counts)
    if encoded.input_ids[:1] == [spec.tokenizer.bos_token_id]:
        prompt = spec.tokenizer.bos_token + prompt
    return {'id': row.get('id'), 'template': spec.template, 'images': grids, 'tile_count': sum(counts),
            'prompt': prompt, 'token_count': len(encoded.input_ids),
            'trained_token_count': sum(label != IGNORE_INDEX for label in encoded.labels),
            'trained_spans': trained_spans(spec.tokenizer, encoded.input_ids, encoded.labels),
            'input_ids': encoded.input_ids, 'labels': encoded.labels, 'warnings': encoded.warnings}


def format_sample(info: dict) -> str:
    lines = [f"sample {info['id']!r}   template {info['template']}"]
    for image in info['images']:
        lines.append(f"image {image['image']} {image['size'][0]}x{image['size'][1]} -> grid "
                     f"{image['grid'][0]}x{image['grid'][1]}, {image['tiles']} tiles")
    lines += [f"tiles {info['tile_count']}   tokens {info['token_count']}   trained {info['trained_token_count']}",
              '--- prompt ---', info['prompt'], '--- trained spans ---']
    lines += [f'[{i}] {span!r}' for i, span in enumerate(info['trained_spans'])]
    lines += [f'warning: {w}' for w in info['warnings']]
    return '\n'.join(lines)
