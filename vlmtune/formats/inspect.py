"""Describe a checkpoint folder without loading its weights: layout, LLM family, vision tower,
template, tiling and tokens per tile (asked of the spec), parameter counts per part and dtypes
from the safetensors headers, and what is missing for the tools that read the layout."""
from collections import Counter
from pathlib import Path

from . import detect
from .common import weight_shapes


def weight_summary(folder, adapter) -> dict:
    counts, dtypes = Counter(), Counter()
    for key, (shape, dtype) in weight_shapes(folder).items():
        numel = 1
        for dim in shape:
            numel *= dim
        counts[adapter.part_of(key)] += numel
        dtypes[dtype] += numel
    return {'parameters': dict(counts), 'total': sum(counts.values()), 'dtypes': dict(dtypes)}


def inspect_folder(folder) -> dict:
    folder = Path(folder)
    adapter = detect(folder)
    spec = adapter.read_spec(folder)
    tower, built = spec.component('vision_tower'), spec.build_image_processor()
    processor = built.settings() if hasattr(built, 'settings') else spec.image_processor
    described = adapter.describe(folder, spec)
    return {
        'folder': str(folder),
        'layout': adapter.NAME,
        'llm_family': spec.component('llm').architecture,
        'vit_flavour': tower.describe(spec.vision_tower) if hasattr(tower, 'describe') else spec.vision_tower['type'],
        'template': spec.template['type'],
        'ps_version': spec.connector.get('ps_version'),
        'select_layer': spec.vision_tower.get('select_layer', -1),
        'connector': spec.connector['type'],
        'tiles': _tiles(processor, spec.image_tokens().per_tile),
        'torch_dtype': described['torch_dtype'],
        'weights': weight_summary(folder, adapter),
        'missing': described['missing'],
    }


def _tiles(processor: dict, per_tile: int) -> dict:
    if processor.get('type') == 'internvl_dynamic':  # InternVL's dynamic tiling, in its own terms
        return {'image_size': processor.get('image_size'), 'dynamic': processor.get('dynamic'),
                'min': processor.get('min_tiles'), 'max': processor.get('max_tiles'),
                'thumbnail': processor.get('use_thumbnail'), 'tokens_per_tile': per_tile}
    return {**processor, 'tokens_per_tile': per_tile}


def _tiles_line(tiles: dict) -> str:
    if 'dynamic' in tiles:
        return (f"{tiles['image_size']}px, dynamic={tiles['dynamic']}, {tiles['min']}..{tiles['max']} tiles, "
                f"thumbnail={tiles['thumbnail']}, {tiles['tokens_per_tile']} tokens/tile")
    rest = ', '.join(f'{k}={v}' for k, v in tiles.items() if k not in ('type', 'image_size', 'tokens_per_tile'))
    return f"{tiles.get('type')} {tiles.get('image_size')}px{', ' + rest if rest else ''}, {tiles['tokens_per_tile']} tokens/tile"


def format_report(info: dict) -> str:
    tiles, weights = info['tiles'], info['weights']
    lines = [f"folder        {info['folder']}",
             f"layout        {info['layout']}",
             f"LLM family    {info['llm_family']}",
             f"ViT flavour   {info['vit_flavour']}",
             f"template      {info['template']}   connector {info['connector']}"
             + (f" (pixel shuffle {info['ps_version']})" if info['ps_version'] else '')
             + f"   select_layer {info['select_layer']}",
             f"tiles         {_tiles_line(tiles)}",
             f"dtype         config {info['torch_dtype']}; stored " +
             ', '.join(f'{k} {v:,}' for k, v in weights['dtypes'].items()),
             'parameters    ' + ', '.join(f'{k} {v:,}' for k, v in weights['parameters'].items()) +
             f"  (total {weights['total']:,})",
             'missing       ' + ('nothing' if not info['missing'] else '; '.join(info['missing']))]
    return '\n'.join(lines)
