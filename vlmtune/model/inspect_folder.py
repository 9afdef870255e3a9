"""Describe an official-format folder without loading its weights: family, ViT flavour, template,
tiling, parameter counts and dtypes from the safetensors headers, and what is missing."""
import json
from collections import Counter
from pathlib import Path

from safetensors import safe_open

from .official_load import read_config, weight_files
from .official_save import REMOTE_FILES
from ..formats.internvl_remote.conversation import get_conv_template

PARTS = ('vision_model.', 'mlp1.', 'language_model.')


def vit_flavour(vision_config: dict) -> str:
    if vision_config.get('norm_type') == 'rms_norm' and vision_config.get('qk_normalization'):
        return '6B-style (RMSNorm, q/k norm, no qkv bias)'
    if vision_config.get('norm_type', 'layer_norm') == 'layer_norm':
        return '300M-style (LayerNorm, qkv bias)' if vision_config.get('qkv_bias') else 'LayerNorm, no qkv bias'
    return f"{vision_config.get('norm_type')} (qk_normalization={vision_config.get('qk_normalization')})"


def weight_summary(folder) -> dict:
    counts, dtypes = Counter(), Counter()
    for path in weight_files(folder):
        with safe_open(str(path), framework='pt') as handle:
            for key in handle.keys():
                tensor_slice = handle.get_slice(key)
                numel = 1
                for dim in tensor_slice.get_shape():
                    numel *= dim
                part = next((p.rstrip('.') for p in PARTS if key.startswith(p)), 'other')
                counts[part] += numel
                dtypes[tensor_slice.get_dtype()] += numel
    return {'parameters': dict(counts), 'total': sum(counts.values()), 'dtypes': dict(dtypes)}


def missing_items(folder: Path, cfg: dict) -> list:
    missing = [f'remote code {name}' for name in REMOTE_FILES[:5] if not (folder / name).exists()]
    llm_arch = cfg['llm_config']['architectures'][0]
    if llm_arch == 'InternLM2ForCausalLM':
        for name in ('modeling_internlm2.py', 'configuration_internlm2.py', 'tokenizer.model'):
            if not (folder / name).exists():
                missing.append(name)
    elif not ((folder / 'vocab.json').exists() and (folder / 'merges.txt').exists()) \
            and not (folder / 'tokenizer.model').exists():
        missing.append('slow tokenizer files (vocab.json + merges.txt), needed by LMDeploy')
    if not cfg.get('auto_map'):
        missing.append('config.json auto_map')
    tok_cfg_path = folder / 'tokenizer_config.json'
    tok_cfg = json.loads(tok_cfg_path.read_text(encoding='utf-8')) if tok_cfg_path.exists() else None
    if tok_cfg is None:
        missing.append('tokenizer_config.json')
    elif not tok_cfg.get('chat_template'):
        missing.append('tokenizer chat_template (LMDeploy would join turns with no roles)')
    gen_path = folder / 'generation_config.json'
    end_token = get_conv_template(cfg['template']).sep.strip()
    if not gen_path.exists():
        missing.append('generation_config.json')
    elif tok_cfg is not None:
        eos = json.loads(gen_path.read_text(encoding='utf-8')).get('eos_token_id')
        eos = eos if isinstance(eos, list) else [eos]
        added = {v.get('content'): int(k) for k, v in tok_cfg.get('added_tokens_decoder', {}).items()}
        if end_token in added and added[end_token] not in eos:
            missing.append(f'generation_config eos_token_id lacks {end_token} ({added[end_token]})')
    return missing


def inspect_folder(folder) -> dict:
    folder = Path(folder)
    cfg = read_config(folder)
    vcfg, lcfg = cfg['vision_config'], cfg['llm_config']
    image_size = cfg.get('force_image_size') or vcfg['image_size']
    num_image_token = int((image_size // vcfg['patch_size']) ** 2 * cfg['downsample_ratio'] ** 2)
    return {
        'folder': str(folder),
        'llm_family': lcfg['architectures'][0],
        'vit_flavour': vit_flavour(vcfg),
        'template': cfg['template'],
        'ps_version': cfg.get('ps_version', 'v1'),
        'select_layer': cfg.get('select_layer', -1),
        'tiles': {'image_size': image_size, 'dynamic': cfg.get('dynamic_image_size'),
                  'min': cfg.get('min_dynamic_patch'), 'max': cfg.get('max_dynamic_patch'),
                  'thumbnail': cfg.get('use_thumbnail'), 'tokens_per_tile': num_image_token},
        'torch_dtype': cfg.get('torch_dtype'),
        'weights': weight_summary(folder),
        'missing': missing_items(folder, cfg),
    }


def format_report(info: dict) -> str:
    tiles, weights = info['tiles'], info['weights']
    lines = [f"folder        {info['folder']}",
             f"LLM family    {info['llm_family']}",
             f"ViT flavour   {info['vit_flavour']}",
             f"template      {info['template']}   pixel shuffle {info['ps_version']}   "
             f"select_layer {info['select_layer']}",
             f"tiles         {tiles['image_size']}px, dynamic={tiles['dynamic']}, {tiles['min']}..{tiles['max']} "
             f"tiles, thumbnail={tiles['thumbnail']}, {tiles['tokens_per_tile']} tokens/tile",
             f"dtype         config {info['torch_dtype']}; stored " +
             ', '.join(f'{k} {v:,}' for k, v in weights['dtypes'].items()),
             'parameters    ' + ', '.join(f'{k} {v:,}' for k, v in weights['parameters'].items()) +
             f"  (total {weights['total']:,})",
             'missing       ' + ('nothing' if not info['missing'] else '; '.join(info['missing']))]
    return '\n'.join(lines)
