"""Config maps of the `internvl_hf` layout: official InternVL (remote code, `InternVLChatModel`)
config.json <-> transformers' native `InternVLForConditionalGeneration` config.json (transformers >= 4.52).
The adapter itself is `internvl_hf`; key maps are `internvl_hf_keys`.

Pure functions on the official layout's plain dicts. Checked by transformers'
own classes in 4.57.6 and 5.24.0 (`tests/test_internvl_hf.py`): logits equal the remote code's.

Config map (official -> hf):
  vision_config: qkv_bias -> attention_bias, qk_normalization -> use_qk_norm, initializer_factor ->
    layer_scale_init_value, dropout -> hidden_dropout_prob/projection_dropout, image_size/patch_size
    as pairs, and `use_mean_pooling: true`: otherwise the -hf tower adds a final LayerNorm that
    InternViT does not have.
  text_config: every LLM the official layout holds keeps its class, except where its entry names another
    transformers family (`hf_text_type`): InternLM2 becomes Llama (bias -> attention_bias, mlp_bias false,
    rope_scaling type -> rope_type). tie_word_embeddings false there and at the top
    (5.x defaults the top one to true).
  top: image_token_id (<IMG_CONTEXT>), image_seq_length (tokens per tile), downsample_ratio,
    vision_feature_layer = select_layer, vision_feature_select_strategy "default" (drops CLS),
    projector_hidden_act "gelu" (exact, as mlp1.2), dtype and torch_dtype.
  What only the official layout knows (template, system_message, tiling settings, the LLM's original
  architecture, InternLM2's auto_map and attn_implementation, drop_path_rate, use_flash_attn, the vision
  model_type) is kept under the top-level key "vlmtune"; transformers keeps unknown keys (4.57 and 5.24
  re-save it), so the inverse is exact. A -hf folder without it (a hub -hf release) inverts by
  convention: template = the LLM entry's default_template, tiling from preprocessor_config.json.
Refused (ValueError): ps_version v1 (the -hf pixel shuffle is v2 only), use_thumbnail false with
  dynamic tiling (GotOcr2 always appends the thumbnail), pad2square, unmerged LoRA, q/k-norm with
  layer_norm_eps != 1e-6 (the -hf q_norm/k_norm use the default eps), LLMs the official layout does not
  hold, InternLM2 rope scaling other than linear/dynamic.
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
from ..model.vision_tower.intern_vit import DEFAULTS as OFFICIAL_VISION_DEFAULTS
from .internvl_hf_keys import OWN_KEY, _arch, architecture_of_text_type, converted, text_types

HF_ARCH = 'InternVLForConditionalGeneration'
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
# InternVLVisionConfig defaults (same reason) and its field map to InternVisionConfig (whose defaults are the tower's).
HF_VISION_DEFAULTS = dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, attention_bias=False,
                          use_qk_norm=False, intermediate_size=4096, hidden_act='gelu', hidden_dropout_prob=0.0,
                          attention_dropout=0.0, initializer_range=0.02, norm_type='layer_norm', layer_norm_eps=1e-6,
                          image_size=[448, 448], patch_size=[14, 14], num_channels=3, layer_scale_init_value=0.1,
                          use_mean_pooling=True)
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
    if converted(_arch(llm)):
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
    if converted(arch):  # InternLM2: a Llama in -hf
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
    arch = own.get('llm_architecture') or architecture_of_text_type(hf_type)
    if text_types().get(arch) != hf_type:
        raise ValueError(f'internvl_hf: text model_type {hf_type!r} has no official InternVL LLM '
                         f'(supported: {sorted(set(text_types().values()))})')
    if converted(arch):
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
        llm.update(architectures=[arch], rope_theta=theta)
        if scaling is not None or 'rope_scaling' in text or 'rope_parameters' in text:
            llm['rope_scaling'] = scaling  # (a config class without the field, Mixtral's, never had the key)
        if llm.get('use_sliding_window') is False and not llm.get('sliding_window'):
            llm['sliding_window'] = None  # an unused window: 5.x writes 0 for some classes, 4.x configs say null
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
        ps_version='v2', template=own.get('template') or default_template(arch),
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


def default_template(architecture: str) -> str:
    """A hub -hf folder without our record: the LLM family's own default template (its entry's)."""
    from ..model.llm import REGISTRY, family_of
    return REGISTRY.get(family_of(architecture)).default_template
