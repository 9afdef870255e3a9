"""Official InternVL (remote code, `InternVLChatModel`) <-> transformers' native
`InternVLForConditionalGeneration` layout ("internvl_hf", transformers >= 4.52).

Pure functions on the official layout's plain dicts, tensors and folders. Checked by transformers'
own classes in 4.57.6 and 5.24.0 (`tests/test_internvl_hf.py`): logits equal the remote code's.

Config map (official -> hf):
  vision_config: qkv_bias -> attention_bias, qk_normalization -> use_qk_norm, initializer_factor ->
    layer_scale_init_value, dropout -> hidden_dropout_prob/projection_dropout, image_size/patch_size
    as pairs, and `use_mean_pooling: true`: otherwise the -hf tower adds a final LayerNorm that
    InternViT does not have.
  text_config: Qwen2, Qwen3, Qwen3-MoE, Llama and Phi3 keep their class; InternLM2 becomes Llama (bias -> attention_bias,
    mlp_bias false, rope_scaling type -> rope_type). tie_word_embeddings false there and at the top
    (5.x defaults the top one to true).
  top: image_token_id (<IMG_CONTEXT>), image_seq_length (tokens per tile), downsample_ratio,
    vision_feature_layer = select_layer, vision_feature_select_strategy "default" (drops CLS),
    projector_hidden_act "gelu" (exact, as mlp1.2), dtype and torch_dtype.
  What only the official layout knows (template, system_message, tiling settings, the LLM's original
  architecture, InternLM2's auto_map and attn_implementation, drop_path_rate, use_flash_attn, the vision
  model_type) is kept under the top-level key "vlmtune"; transformers keeps unknown keys (4.57 and 5.24
  re-save it), so the inverse is exact. A -hf folder without it (a hub -hf release) inverts by
  convention: template from the LLM family, tiling from preprocessor_config.json.
Refused (ValueError): ps_version v1 (the -hf pixel shuffle is v2 only), use_thumbnail false with
  dynamic tiling (GotOcr2 always appends the thumbnail), pad2square, unmerged LoRA, q/k-norm with
  layer_norm_eps != 1e-6 (the -hf q_norm/k_norm use the default eps), LLMs other than
  Qwen2/Qwen3/Qwen3-MoE/Llama/InternLM2/Phi3, InternLM2 rope scaling other than linear/dynamic.
Known -hf limit, not refused: transformers 4.57 raises on vision_feature_layer != -1
  (`get_image_features` calls a missing `self.vision_model`); 5.24 runs it and matches.

Key map (official -> hf; tables and rules in `internvl_hf_keys`, one table for both ways):
  vision_model.* -> model.vision_tower.* (encoder.layers -> encoder.layer, ls1/2 -> lambda_1/2,
  norm1/2 -> layernorm_before/after, attn.proj -> attention.projection_layer, class/position/patch
  embedding -> cls_token/position_embeddings/patch_embeddings.projection, fused attn.qkv rows q|k|v ->
  attention.{q,k,v}_proj); mlp1.{0,1,3} -> model.multi_modal_projector.{layer_norm, linear_1, linear_2};
  language_model.model.* -> model.language_model.*, language_model.lm_head -> lm_head; InternLM2 takes
  Llama names and its wqkv (per KV head: g q-heads, k, v) splits into q/k/v_proj.
  We write these (5.x) names, which 4.57 loads too. 4.57's own save_pretrained writes the older
  `language_model.model.* / vision_tower.* / multi_modal_projector.* / language_model.lm_head` names;
  5.24 loads those too, and `state_from_hf` reads both.
Processor, tokenizer and preprocessing choices: see `internvl_hf_processor`.
"""
import json
import shutil
from pathlib import Path

import torch

from ..model.spec import ModelSpec
from . import internvl
from .common import CheckpointError, folder_architecture, read_json, read_state_dict, write_json, write_weights
from .internvl_hf_keys import HF_TO_ARCH, LLM_TYPES, OWN_KEY, _arch, state_from_hf, state_to_hf
from .tokenizers import load_tokenizer as official_tokenizer
from .tokenizers import save_tokenizer

HF_ARCH = 'InternVLForConditionalGeneration'
DEFAULT_TEMPLATE = {'qwen2': 'internvl2_5', 'llama': 'internvl2_5', 'phi3': 'phi3-chat', 'qwen3': 'internvl2_5',
                    'qwen3_moe': 'internvl2_5', 'qwen2_moe': 'internvl2_5', 'mixtral': 'internvl2_5'}
OFFICIAL_AUTO_MAP = {'AutoConfig': 'configuration_internvl_chat.InternVLChatConfig',
                     'AutoModel': 'modeling_internvl_chat.InternVLChatModel',
                     'AutoModelForCausalLM': 'modeling_internvl_chat.InternVLChatModel'}
# PretrainedConfig bookkeeping and generation defaults: not part of a model's definition.
GENERIC_KEYS = {
    'return_dict', 'output_hidden_states', 'output_attentions', 'torchscript', 'use_bfloat16', 'tf_legacy_loss',
    'pruned_heads', 'chunk_size_feed_forward', 'is_encoder_decoder', 'is_decoder', 'cross_attention_hidden_size',
    'add_cross_attention', 'tie_encoder_decoder', 'max_length', 'min_length', 'do_sample', 'early_stopping',
    'num_beams', 'num_beam_groups', 'diversity_penalty', 'temperature', 'top_k', 'top_p', 'typical_p',
    'repetition_penalty', 'length_penalty', 'no_repeat_ngram_size', 'encoder_no_repeat_ngram_size',
    'bad_words_ids', 'num_return_sequences', 'output_scores', 'return_dict_in_generate', 'forced_bos_token_id',
    'forced_eos_token_id', 'remove_invalid_values', 'exponential_decay_length_penalty', 'suppress_tokens',
    'begin_suppress_tokens', 'finetuning_task', 'id2label', 'label2id', 'tokenizer_class', 'prefix',
    'sep_token_id', 'decoder_start_token_id', 'task_specific_params', 'problem_type', '_name_or_path',
    '_attn_implementation_autoset', 'transformers_version', '_commit_hash', 'torch_dtype', 'dtype',
    'attn_implementation', '_attn_implementation', 'auto_map', 'layer_types', 'rope_parameters'}
# transformers' LlamaConfig defaults: a config saved by 4.x `save_pretrained` omits keys equal to them.
LLAMA_DEFAULTS = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                      num_attention_heads=32, hidden_act='silu', max_position_embeddings=2048, initializer_range=0.02,
                      rms_norm_eps=1e-6, use_cache=True, pad_token_id=None, bos_token_id=1, eos_token_id=2,
                      rope_theta=10000.0)
# InternVLVisionConfig defaults (same reason), InternVisionConfig defaults, and the field map between them.
HF_VISION_DEFAULTS = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, attention_bias=False,
                          use_qk_norm=False, intermediate_size=4096, hidden_act='gelu', hidden_dropout_prob=0.0,
                          attention_dropout=0.0, initializer_range=0.02, norm_type='layer_norm', layer_norm_eps=1e-6,
                          image_size=[448, 448], patch_size=[14, 14], num_channels=3, layer_scale_init_value=0.1,
                          use_mean_pooling=True)
OFFICIAL_VISION_DEFAULTS = dict(num_channels=3, patch_size=14, image_size=224, qkv_bias=False, hidden_size=3200,
                                num_attention_heads=25, intermediate_size=12800, qk_normalization=True,
                                num_hidden_layers=48, hidden_act='gelu', norm_type='rms_norm', layer_norm_eps=1e-6,
                                dropout=0.0, attention_dropout=0.0, initializer_range=0.02, initializer_factor=0.1)
VISION_MAP = {'hidden_size': 'hidden_size', 'num_hidden_layers': 'num_hidden_layers', 'num_channels': 'num_channels',
              'num_attention_heads': 'num_attention_heads', 'intermediate_size': 'intermediate_size',
              'hidden_act': 'hidden_act', 'qkv_bias': 'attention_bias', 'qk_normalization': 'use_qk_norm',
              'norm_type': 'norm_type', 'layer_norm_eps': 'layer_norm_eps', 'dropout': 'hidden_dropout_prob',
              'attention_dropout': 'attention_dropout', 'initializer_range': 'initializer_range',
              'initializer_factor': 'layer_scale_init_value'}
INTERNLM2_KEYS = ('vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads',
                  'num_key_value_heads', 'hidden_act', 'max_position_embeddings', 'initializer_range',
                  'rms_norm_eps', 'use_cache', 'pad_token_id', 'bos_token_id', 'eos_token_id', 'rope_theta')


def _dtype_name(cfg: dict):
    name = cfg.get('torch_dtype') or cfg.get('dtype')
    return str(name).replace('torch.', '') if name else None


def _clean(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in GENERIC_KEYS}


def check_expressible(official: dict) -> None:
    """Raise ValueError for what the -hf layout cannot hold."""
    vision = official['vision_config']
    if official.get('ps_version', 'v1') != 'v2':
        raise ValueError("internvl_hf: ps_version 'v1' cannot be expressed: the -hf pixel shuffle is v2 only "
                         "(InternVLModel.pixel_shuffle always transposes back to row-major)")
    if official.get('use_backbone_lora') or official.get('use_llm_lora'):
        raise ValueError('internvl_hf: merge the LoRA adapters first (use_backbone_lora/use_llm_lora != 0)')
    if official.get('dynamic_image_size', False) and not official.get('use_thumbnail', False):
        raise ValueError('internvl_hf: use_thumbnail false with dynamic tiling cannot be expressed: '
                         'GotOcr2ImageProcessor always appends the thumbnail to multi-tile images')
    if official.get('pad2square'):
        raise ValueError('internvl_hf: pad2square cannot be expressed (GotOcr2ImageProcessor never pads)')
    if vision.get('qk_normalization') and vision.get('layer_norm_eps', 1e-6) != 1e-6:
        raise ValueError('internvl_hf: q/k normalization with layer_norm_eps != 1e-6 cannot be expressed '
                         '(the -hf q_norm/k_norm always use eps 1e-6)')
    if vision.get('norm_type', 'rms_norm') not in ('layer_norm', 'rms_norm'):
        raise ValueError(f"internvl_hf: vision norm_type {vision['norm_type']!r} is not supported")
    if (1 / official.get('downsample_ratio', 0.5)) % 1:
        raise ValueError('internvl_hf: 1/downsample_ratio must be an integer')
    llm = official['llm_config']
    if _arch(llm) == 'InternLM2ForCausalLM':
        kind = (llm.get('rope_scaling') or {}).get('type') or (llm.get('rope_scaling') or {}).get('rope_type')
        if kind not in (None, 'linear', 'dynamic', 'default'):
            raise ValueError(f'internvl_hf: InternLM2 rope_scaling {kind!r} has no Llama equivalent')


def _vision_to_hf(vision: dict, dtype) -> dict:
    vision = {**OFFICIAL_VISION_DEFAULTS, **vision}
    out = {hf: vision[name] for name, hf in VISION_MAP.items()}
    out.update(model_type='internvl_vision', image_size=[vision['image_size']] * 2,
               patch_size=[vision['patch_size']] * 2, projection_dropout=vision['dropout'],
               use_mean_pooling=True, use_mask_token=False, use_absolute_position_embeddings=True)
    return {**out, **({'torch_dtype': dtype, 'dtype': dtype} if dtype else {})}


def _llm_to_hf(llm: dict, dtype):
    """-> (text_config, what the inverse needs beyond it)."""
    arch = _arch(llm)
    extra = {}
    if arch == 'InternLM2ForCausalLM':
        out = {k: llm[k] for k in INTERNLM2_KEYS if k in llm}
        heads = llm['num_attention_heads']
        out.update(model_type='llama', architectures=['LlamaForCausalLM'], attention_bias=bool(llm.get('bias', True)),
                   mlp_bias=False, head_dim=llm['hidden_size'] // heads,
                   num_key_value_heads=llm.get('num_key_value_heads') or heads)
        scaling = llm.get('rope_scaling')
        if scaling:
            kind = scaling.get('type') or scaling.get('rope_type')
            out['rope_scaling'] = {'rope_type': kind, 'factor': float(scaling['factor'])}
        mapped = set(INTERNLM2_KEYS) | {'architectures', 'model_type', 'bias', 'rope_scaling', 'tie_word_embeddings'}
        extra = {'internlm2': {k: v for k, v in _clean(llm).items() if k not in mapped}}
        extra['internlm2'].update({k: llm[k] for k in ('auto_map', 'attn_implementation') if k in llm})
    else:
        out = _clean(llm)
        extra = {'llm': {k: llm[k] for k in ('auto_map', 'attn_implementation') if k in llm}}
    out['tie_word_embeddings'] = False
    if dtype:
        out.update(torch_dtype=dtype, dtype=dtype)
    return out, extra


def hf_config(official: dict, image_token_id: int, tokens_per_tile: int) -> dict:
    """config.json of the -hf folder for an official InternVLChatConfig dict (tokens_per_tile: what the
    model spec says one tile becomes, `ModelSpec.image_tokens().per_tile`)."""
    check_expressible(official)
    dtype = _dtype_name(official)
    text, extra = _llm_to_hf(official['llm_config'], dtype)
    own = {'layout': 'internvl_hf', 'version': 1, 'llm_architecture': _arch(official['llm_config']),
           'template': official.get('template'), 'ps_version': 'v2',
           'force_image_size': official.get('force_image_size'),
           'dynamic_image_size': official.get('dynamic_image_size', False),
           'use_thumbnail': official.get('use_thumbnail', False),
           'min_dynamic_patch': official.get('min_dynamic_patch', 1),
           'max_dynamic_patch': official.get('max_dynamic_patch', 6),
           'vision': {k: official['vision_config'][k] for k in ('drop_path_rate', 'use_flash_attn', 'model_type')
                      if k in official['vision_config']}, **extra}
    if 'system_message' in official:
        own['system_message'] = official['system_message']
    cfg = dict(architectures=[HF_ARCH], model_type='internvl',
               vision_config=_vision_to_hf(official['vision_config'], dtype), text_config=text,
               image_token_id=int(image_token_id), image_seq_length=int(tokens_per_tile),
               downsample_ratio=official.get('downsample_ratio', 0.5), projector_hidden_act='gelu',
               vision_feature_layer=official.get('select_layer', -1), vision_feature_select_strategy='default',
               tie_word_embeddings=False, **{OWN_KEY: own})
    if dtype:
        cfg.update(torch_dtype=dtype, dtype=dtype)
    return cfg


def _rope_from_hf(text: dict):
    """(rope_theta, rope_scaling) from a 4.x (rope_theta/rope_scaling) or 5.x (rope_parameters) dict."""
    params = text.get('rope_parameters') or {}
    theta = text.get('rope_theta', params.get('rope_theta', 10000.0))
    scaling = text.get('rope_scaling')
    if scaling is None and params.get('rope_type', 'default') != 'default':
        scaling = {k: v for k, v in params.items() if k != 'rope_theta'}
    return theta, scaling


def official_config(hf: dict, preprocessor: dict = None) -> dict:
    """Official InternVLChatConfig dict for an -hf config.json dict (+ its preprocessor_config.json)."""
    own = hf.get(OWN_KEY) or {}
    vision, text = {**HF_VISION_DEFAULTS, **hf.get('vision_config', {})}, dict(hf['text_config'])
    if not vision['use_mean_pooling']:
        raise ValueError('internvl_hf: use_mean_pooling false adds a final LayerNorm InternViT does not have')
    if hf.get('vision_feature_select_strategy', 'default') != 'default':
        raise ValueError("internvl_hf: only vision_feature_select_strategy 'default' (drop CLS) is official")
    if not isinstance(hf.get('vision_feature_layer', -1), int):
        raise ValueError('internvl_hf: a list of vision_feature_layer has no official equivalent')
    if hf.get('projector_hidden_act', 'gelu') != 'gelu':
        raise ValueError('internvl_hf: the official projector uses exact GELU')
    size, patch = vision['image_size'], vision['patch_size']
    size, patch = (size if isinstance(size, int) else size[0]), (patch if isinstance(patch, int) else patch[0])
    dtype = _dtype_name(hf)
    own_vision = own.get('vision', {})
    official_vision = {name: vision[hf] for name, hf in VISION_MAP.items()}
    official_vision.update(architectures=['InternVisionModel'],
                           model_type=own_vision.get('model_type', 'intern_vit_6b'), image_size=size, patch_size=patch, use_flash_attn=own_vision.get('use_flash_attn', False),
                           drop_path_rate=own_vision.get('drop_path_rate', 0.0))
    theta, scaling = _rope_from_hf(text)
    hf_type = text.get('model_type', 'qwen2')
    arch = own.get('llm_architecture') or HF_TO_ARCH.get(hf_type)
    if arch not in LLM_TYPES or LLM_TYPES[arch] != hf_type:
        raise ValueError(f'internvl_hf: text model_type {hf_type!r} has no official InternVL LLM '
                         f'(supported: {sorted(HF_TO_ARCH)})')
    if arch == 'InternLM2ForCausalLM':
        if text.get('mlp_bias') or text.get('head_dim', text['hidden_size'] // text['num_attention_heads']) \
                != text['hidden_size'] // text['num_attention_heads']:
            raise ValueError('internvl_hf: this Llama config has no InternLM2 equivalent (mlp_bias or head_dim)')
        text = {**LLAMA_DEFAULTS, **text}
        llm = {k: text[k] for k in INTERNLM2_KEYS}
        llm.update(own.get('internlm2', {}))
        llm.update(architectures=[arch], model_type='internlm2', bias=bool(text.get('attention_bias', False)),
                   rope_theta=theta, num_key_value_heads=text.get('num_key_value_heads', text['num_attention_heads']))
        if scaling:
            llm['rope_scaling'] = {'type': scaling.get('rope_type') or scaling.get('type'),
                                   'factor': float(scaling['factor'])}
        else:
            llm['rope_scaling'] = None
    else:
        llm = _clean(text)
        if 'num_local_experts' in llm and hf_type == 'qwen3_moe':  # 5.x saves Qwen3-MoE's num_experts as num_local_experts
            llm.setdefault('num_experts', llm.pop('num_local_experts'))
        llm.update(own.get('llm', {}))
        llm.update(architectures=[arch], rope_theta=theta, rope_scaling=scaling)
    llm['tie_word_embeddings'] = False
    if dtype:
        llm['torch_dtype'] = official_vision['torch_dtype'] = dtype
    pre = preprocessor or {}
    tile = (pre.get('size') or {}).get('height')
    crop = pre.get('crop_to_patches', True)
    out = dict(
        architectures=['InternVLChatModel'], model_type='internvl_chat', auto_map=OFFICIAL_AUTO_MAP,
        vision_config=official_vision, llm_config=llm, use_backbone_lora=0, use_llm_lora=0,
        select_layer=hf.get('vision_feature_layer', -1), downsample_ratio=hf.get('downsample_ratio', 0.5),
        ps_version='v2', template=own.get('template') or DEFAULT_TEMPLATE[hf_type],
        force_image_size=own['force_image_size'] if 'force_image_size' in own else (tile or size),
        dynamic_image_size=own.get('dynamic_image_size', bool(crop)),
        use_thumbnail=own.get('use_thumbnail', True),
        min_dynamic_patch=own.get('min_dynamic_patch', pre.get('min_patches', 1)),
        max_dynamic_patch=own.get('max_dynamic_patch', pre.get('max_patches', 12)),
        pad2square=False, hidden_size=text['hidden_size'], tie_word_embeddings=False)
    if 'system_message' in own:
        out['system_message'] = own['system_message']
    if dtype:
        out['torch_dtype'] = dtype
    return out


# --- the layout adapter -------------------------------------------------------------------------
NAME, ARCHITECTURE = 'internvl_hf', HF_ARCH
# The official layout's tokenizer and generation files, kept for the exact way back (transformers
# ignores the folder; the -hf tokenizer beside it is derived from them).
OFFICIAL_FILES = 'official_tokenizer'
PARTS = {'model.vision_tower.': 'vision_tower', 'vision_tower.': 'vision_tower',
         'model.multi_modal_projector.': 'connector', 'multi_modal_projector.': 'connector'}


def detect(folder) -> bool:
    return folder_architecture(folder) == HF_ARCH


def _official(folder) -> dict:
    folder = Path(folder)
    hf = read_json(folder / 'config.json')
    pre_path = folder / 'preprocessor_config.json'
    try:
        official = official_config(hf, read_json(pre_path) if pre_path.exists() else None)
    except (KeyError, ValueError) as exc:
        raise CheckpointError(f'{folder / "config.json"}: {exc}') from None
    order = (hf.get(OWN_KEY) or {}).get('key_order', {})  # the official config.json's own key order
    for part in ('vision_config', 'llm_config'):
        official[part] = _ordered(official[part], order.get(part, []))
    return _ordered(official, order.get('config', []))


def _ordered(data: dict, order: list) -> dict:
    return {**{k: data[k] for k in order if k in data}, **data}


def read_spec(folder) -> ModelSpec:
    return internvl.spec_from_config(_official(folder))


def read_state(folder) -> dict:
    return read_state_dict(folder)


def unsupported(spec: ModelSpec):
    reason = internvl.unsupported(spec)
    if reason:
        return reason
    try:
        check_expressible(internvl.config_dict(spec, torch.float32))
    except ValueError as exc:
        return str(exc).replace('internvl_hf: ', '')
    return None


def to_layout(state: dict, spec: ModelSpec) -> dict:
    """Package keys -> -hf keys (through the official names)."""
    return state_to_hf(internvl.to_layout(state, spec), {'llm_config': spec.llm['config']})


def from_layout(state: dict, spec: ModelSpec) -> dict:
    official = {'llm_config': spec.llm['config']}
    hf = {'text_config': _llm_to_hf(spec.llm['config'], None)[0], OWN_KEY: {'llm_architecture': _arch(official['llm_config'])}}
    try:
        return internvl.from_layout(state_from_hf(state, hf), spec)
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None


def part_of(key: str) -> str:
    return next((part for prefix, part in PARTS.items() if key.startswith(prefix)), 'language_model')


def load_tokenizer(folder):
    """The official tokenizer when the folder keeps it (ids equal the -hf one's; saving the official
    layout again then gives the same files), else transformers' own from the folder."""
    if (Path(folder) / OFFICIAL_FILES).is_dir():
        return official_tokenizer(Path(folder) / OFFICIAL_FILES)
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(str(folder))


def describe(folder, spec: ModelSpec) -> dict:
    folder = Path(folder)
    missing = [name for name in ('preprocessor_config.json', 'processor_config.json', 'tokenizer_config.json',
                                 'generation_config.json') if not (folder / name).exists()]
    if (folder / 'tokenizer_config.json').exists() and not read_json(folder / 'tokenizer_config.json').get('chat_template'):
        missing.append('tokenizer chat_template')
    return {'torch_dtype': _dtype_name(read_json(folder / 'config.json')), 'missing': missing}


def write(staging: Path, spec: ModelSpec, state: dict, tokenizer, dtype, max_shard_bytes: int, base_folder=None):
    """The -hf folder: config.json, weights under the -hf names, and the processor, tokenizer,
    chat-template and generation files derived from the official ones (see internvl_hf_processor)."""
    from .internvl_hf_processor import write_processor_files
    official = internvl.config_dict(spec, dtype)
    check_expressible(official)
    template = spec.build_template()
    kept = staging / OFFICIAL_FILES
    kept.mkdir()
    save_tokenizer(tokenizer, kept, template.chat_template(spec.system_message))
    write_json(kept / 'generation_config.json', internvl.generation_config_dict(spec, tokenizer))
    tokens_per_tile = spec.image_tokens().per_tile
    image_token_id = write_processor_files(kept, official, staging, template.processor_chat_template(spec.system_message),
                                           template.end_token, tokens_per_tile)
    cfg = hf_config(official, image_token_id, tokens_per_tile)
    cfg[OWN_KEY]['key_order'] = {'config': list(official), 'vision_config': list(official['vision_config']),
                                  'llm_config': list(official['llm_config'])}
    write_json(staging / 'config.json', cfg)
    write_weights(to_layout(state, spec), staging, dtype, max_shard_bytes)
    shutil.copyfile(Path(__file__).parent / 'internvl_hf_README.md', staging / 'README.md')
