"""Load an official InternVL folder (config.json + safetensors) into the package model, without
executing any Python file of the folder. Every failure is a one-line `CheckpointError` naming the
file and key."""
import json
from pathlib import Path

import torch
from safetensors import safe_open
from transformers.modeling_utils import no_init_weights

from ..formats.internvl_remote.configuration_internvl_chat import LLM_CONFIG_CLASSES, InternVLChatConfig
from .tokenizer_files import load_tokenizer
from .vlm import VisionLanguageModel

SUPPORTED_ARCHITECTURES = ('InternVLChatModel',)
REQUIRED_FIELDS = ('vision_config', 'llm_config', 'template', 'downsample_ratio')
REQUIRED_VISION_FIELDS = ('image_size', 'patch_size', 'hidden_size', 'num_attention_heads',
                          'intermediate_size', 'num_hidden_layers')


class CheckpointError(ValueError):
    """A problem with a checkpoint folder; the message names the file, key and fix."""


def read_config(folder) -> dict:
    path = Path(folder) / 'config.json'
    if not Path(folder).is_dir():
        raise CheckpointError(f'{folder}: not a directory (expected an InternVL checkpoint folder)')
    if not path.exists():
        raise CheckpointError(f'{path}: missing (an official folder has config.json)')
    try:
        cfg = json.loads(path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f'{path}: not valid JSON ({exc})') from None
    arch = (cfg.get('architectures') or [None])[0]
    if arch not in SUPPORTED_ARCHITECTURES:
        raise CheckpointError(f'{path}: architectures[0] is {arch!r}; supported: {list(SUPPORTED_ARCHITECTURES)}')
    for key in REQUIRED_FIELDS:
        if cfg.get(key) is None:
            raise CheckpointError(f'{path}: missing field {key!r}')
    for key in REQUIRED_VISION_FIELDS:
        if key not in cfg['vision_config']:
            raise CheckpointError(f'{path}: missing field vision_config.{key}')
    llm_arch = (cfg['llm_config'].get('architectures') or [None])[0]
    if llm_arch not in LLM_CONFIG_CLASSES:
        raise CheckpointError(f'{path}: llm_config.architectures[0] is {llm_arch!r}; '
                              f'supported: {sorted(LLM_CONFIG_CLASSES)}')
    if cfg.get('system_message', '') is None:
        raise CheckpointError(f'{path}: "system_message" is null; remove the field or give a string')
    return cfg


def weight_files(folder) -> list:
    folder = Path(folder)
    index = folder / 'model.safetensors.index.json'
    if index.exists():
        try:
            weight_map = json.loads(index.read_text(encoding='utf-8'))['weight_map']
        except (json.JSONDecodeError, KeyError) as exc:
            raise CheckpointError(f'{index}: unreadable index ({exc})') from None
        files = sorted(set(weight_map.values()))
        for name in files:
            if not (folder / name).exists():
                raise CheckpointError(f'{folder / name}: shard listed in {index.name} is missing')
        return [folder / name for name in files]
    if (folder / 'model.safetensors').exists():
        return [folder / 'model.safetensors']
    if list(folder.glob('*.bin')):
        raise CheckpointError(f'{folder}: only .bin weights found; save as safetensors first')
    raise CheckpointError(f'{folder}: no model.safetensors or model.safetensors.index.json')


def read_state_dict(folder) -> dict:
    state = {}
    for path in weight_files(folder):
        try:
            with safe_open(str(path), framework='pt') as handle:
                for key in handle.keys():
                    state[key] = handle.get_tensor(key)
        except Exception as exc:  # safetensors raises its own error types for truncated files
            raise CheckpointError(f'{path}: cannot read safetensors (truncated or corrupt: {exc})') from None
    return state


def merge_official_lora(state: dict, prefix: str) -> dict:
    """Fold PEFT LoRA weights saved by the official trainer (`use_*_lora` > 0, alpha = 2r) into the
    base weights, and strip PEFT's `base_model.model.` wrapper from the key names."""
    scale = 2.0  # alpha / r with alpha = 2r
    wrapper = f'{prefix}base_model.model.'
    merged = {}
    for key, value in state.items():
        if not key.startswith(wrapper) or '.lora_' in key:
            if not key.startswith(wrapper):
                merged[key] = value
            continue
        plain = prefix + key[len(wrapper):].replace('.base_layer.', '.')
        stem = key.rsplit('.base_layer.weight', 1)[0] if key.endswith('.base_layer.weight') else None
        if stem is not None and f'{stem}.lora_A.default.weight' in state:
            lora_a = state[f'{stem}.lora_A.default.weight'].float()
            lora_b = state[f'{stem}.lora_B.default.weight'].float()
            value = (value.float() + scale * lora_b @ lora_a).to(value.dtype)
        merged[plain] = value
    return merged


def load_official(folder, dtype=torch.float32, device='cpu', attn_implementation=None, with_tokenizer=True):
    """-> (VisionLanguageModel in eval mode, tokenizer or None)."""
    folder = Path(folder)
    cfg_dict = read_config(folder)
    state = read_state_dict(folder)
    if cfg_dict.get('use_backbone_lora'):
        state = merge_official_lora(state, 'vision_model.')
    if cfg_dict.get('use_llm_lora'):
        state = merge_official_lora(state, 'language_model.')
    cfg_dict.update(use_backbone_lora=0, use_llm_lora=0)
    try:
        config = InternVLChatConfig(**cfg_dict)
    except (TypeError, ValueError, KeyError) as exc:
        raise CheckpointError(f'{folder / "config.json"}: invalid config ({exc})') from None
    with no_init_weights():
        model = VisionLanguageModel(config, attn_implementation=attn_implementation)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise CheckpointError(f'{folder}: weights missing {len(missing)} key(s), first: {missing[0]!r}')
    if unexpected:
        raise CheckpointError(f'{folder}: unexpected weight key(s) {len(unexpected)}, first: {unexpected[0]!r}')
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(f'{folder}: shape mismatch for {key!r}: checkpoint {tuple(tensor.shape)} '
                                  f'vs config {tuple(expected[key].shape)}')
    model.load_state_dict(state, strict=True)
    model.to(device=device, dtype=dtype).eval()
    tokenizer = None
    if with_tokenizer:
        try:
            tokenizer = load_tokenizer(folder)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f'{folder}: cannot load tokenizer ({exc})') from None
        model.set_tokenizer(tokenizer)
    return model, tokenizer
