"""What the two llava-hf layouts share: `llava_hf` (transformers' `LlavaForConditionalGeneration`,
LLaVA-1.5) and `llava_next_hf` (`LlavaNextForConditionalGeneration`, LLaVA-NeXT). Each adapter module
is a `LlavaLayout` with its flavour; processor, tokenizer and template files are `llava_hf_processor`'s.

Config map (spec <-> config.json):
  vision_tower {type clip|siglip, config, select_layer, select_feature} <-> vision_config (model_type
    clip_vision_model | siglip_vision_model), vision_feature_layer = select_layer, and
    vision_feature_select_strategy: CLIP 'patch' = 'default' (drops CLS), 'cls_patch' = 'full'; SigLIP
    has no CLS: 'patch' = 'full', and llava-hf's 'default' (drops patch 0) is SIGLIP_DROP_FIRST.
  connector mlp2x_gelu <-> projector_hidden_act 'gelu' (exact), multimodal_projector_bias true.
  llm {type, config} <-> text_config: any causal LM transformers implements and our llm registry has;
    `architectures` is always written (LMDeploy's TurboMind reader needs it); tie_word_embeddings at the
    top follows the LLM's.
  image_token_index: the tokenizer's id of the template's image token. image_seq_length: tokens of one
    (base) tile as llava-hf computes them. NeXT: image_grid_pinpoints as (height, width).
  Record: config.json "vlmtune" holds each component's settings except the LLM/tower configs and the
    select layer (template and system message, processor settings such as pad, select_feature) plus
    other layouts' extras, so read_spec gives back the spec written (dtype bookkeeping aside).
    transformers keeps unknown config keys. A folder without it (a hub release) maps by convention:
    tower from the vision model_type, select_feature from the strategy, processor from
    preprocessor_config.json, template = its chat template (`hf_chat_template`). Other top-level fields
    (ignore_index, pad_token_id, ...) are carried through.
Key map (package <-> transformers 4.48 names, prefix renames): vision_tower.* = vision_tower.*,
  connector.0 / connector.2 <-> multi_modal_projector.linear_1 / linear_2, llm.* <->
  language_model.*, image_newline = image_newline. 4.48's names are written (4.48 and TurboMind load
  them; 4.57 / 5.24 load them, and re-save a loaded folder under them); read also accepts transformers
  >= 4.52's in-memory names model.vision_tower.*, model.multi_modal_projector.*, model.language_model.*,
  lm_head.*, model.image_newline, and 5.x's tower keys without the `vision_model.` level (what 5.24 saves
  for a model it built itself: vision_tower.embeddings.*). A tied lm_head is left out, as transformers
  saves it, and restored on read.
Refused with a reason: towers other than CLIP/SigLIP, connectors other than mlp2x_gelu, LLMs without
  a transformers class, templates that wrap the image tokens, a processor size other than the tower's,
  llava_hf with anyres, llava_next_hf without anyres + spatial_unpad or with tiles that are not a full
  square patch grid (LlavaNext reshapes each tile's tokens to one: CLIP 'cls_patch'; SigLIP either way,
  as 4.48's LlavaNext counts a CLS for 'full'); on read: a non-gelu projector, no projector bias, a list of feature layers.
LMDeploy 0.12.1 (not refused, reported by `describe`): its PyTorch engine builds CLIP towers only, and
  its llava preprocessor counts a CLS token for 'full' whatever the tower, one image token too many
  for SigLIP.
"""
import json
from pathlib import Path
from typing import Optional

import transformers
from transformers import CONFIG_MAPPING
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

from ..model.llm import family_of
from ..model.spec import COMPONENTS, ModelSpec
from . import llava_hf_processor as proc
from .common import DTYPE_NAMES, CheckpointError, read_json, read_state_dict, write_json, write_weights
from .tokenizers import load_tokenizer as _load_tokenizer

OWN_KEY = 'vlmtune'
SIGLIP_DROP_FIRST = 'drop_first'  # the SigLIP setting that drops index 0 like llava-hf's 'default'
DEFAULT_SELECT_LAYER, DEFAULT_SELECT_FEATURE = -2, 'patch'  # the clip/siglip towers' defaults (LLaVA's scripts)
TOWERS = {'clip': 'clip_vision_model', 'siglip': 'siglip_vision_model'}
STRATEGIES = {'clip': {'patch': 'default', 'cls_patch': 'full'},
              'siglip': {'patch': 'full', SIGLIP_DROP_FIRST: 'default'}}
CLS_TOKENS = {'clip': 1, 'siglip': 0}  # the processor's num_additional_image_tokens
CONNECTOR = 'mlp2x_gelu'
HELD = {'vision_tower': ('config', 'select_layer'), 'llm': ('config',)}  # what config.json itself holds
BOOKKEEPING = ('torch_dtype', 'dtype', 'transformers_version', '_name_or_path', '_attn_implementation_autoset',
               '_commit_hash')
OWNED = {'architectures', 'model_type', 'vision_config', 'text_config', 'image_token_index', 'image_token_id',
         'projector_hidden_act', 'multimodal_projector_bias', 'vision_feature_layer',
         'vision_feature_select_strategy', 'image_seq_length', 'image_grid_pinpoints', 'tie_word_embeddings',
         OWN_KEY, *BOOKKEEPING}
KEYS = [('vision_tower.', 'vision_tower.'), ('connector.0.', 'multi_modal_projector.linear_1.'),
        ('connector.2.', 'multi_modal_projector.linear_2.'), ('llm.', 'language_model.'),
        ('image_newline', 'image_newline')]
NEWER_KEYS = [('model.vision_tower.', 'vision_tower.'), ('model.multi_modal_projector.', 'multi_modal_projector.'),
              ('model.language_model.', 'language_model.model.'), ('lm_head.', 'language_model.lm_head.'),
              ('model.image_newline', 'image_newline')]
PARTS = {'vision_tower.': 'vision_tower', 'multi_modal_projector.': 'connector', 'image_newline': 'connector',
         'language_model.': 'llm'}
LLM_PREFIX = 'language_model.'
TOWER = 'vision_tower.vision_model.'  # transformers 4.48's CLIPVisionModel / SiglipVisionModel keep this level


def _clean(cfg: dict) -> dict:
    return {k: v for k, v in cfg.items() if k not in BOOKKEEPING}


def _legacy(state: dict) -> dict:
    """transformers >= 4.52 names -> 4.48's; 5.x's CLIP/SigLIP models also lost their `vision_model.` level."""
    out = {}
    for key, value in _rename(state, NEWER_KEYS).items():
        if key.startswith('vision_tower.') and not key.startswith(TOWER):
            key = TOWER + key[len('vision_tower.'):]
        out[key] = value
    return out


def _rename(state: dict, table) -> dict:
    out = {}
    for key, value in state.items():
        src, dst = next(((s, d) for s, d in table if key.startswith(s)), ('', ''))
        out[dst + key[len(src):]] = value  # unknown keys pass: the loader reports them
    return out


def _rope_4x(text: dict) -> dict:
    """transformers 5.x saves rope_parameters; the LLM configs we build (4.x) read rope_theta / rope_scaling."""
    params = text.pop('rope_parameters', None) or {}
    if params:
        text.setdefault('rope_theta', params.get('rope_theta', 10000.0))
        if params.get('rope_type', 'default') != 'default':
            text.setdefault('rope_scaling', {k: v for k, v in params.items() if k != 'rope_theta'})
    return text


def _strategy(tower: dict) -> str:
    return STRATEGIES[tower['type']][tower.get('select_feature', DEFAULT_SELECT_FEATURE)]


def _vision(tower: dict):
    return CONFIG_MAPPING[TOWERS[tower['type']]](**_clean(tower['config']))


class LlavaLayout:
    def __init__(self, name: str, order: int, architecture: str, model_type: str, processor_class: str, title: str,
                 next_: bool):
        self.NAME, self.ORDER, self.ARCHITECTURE, self.model_type = name, order, architecture, model_type
        self.processor_class, self.title, self.next = processor_class, title, next_

    # --- reading --------------------------------------------------------------------------------
    def detect(self, folder) -> bool:
        try:
            cfg = json.loads((Path(folder) / 'config.json').read_text(encoding='utf-8'))
        except (OSError, ValueError):
            return False
        return isinstance(cfg, dict) and (cfg.get('architectures') or [None])[0] == self.ARCHITECTURE

    def read_spec(self, folder) -> ModelSpec:
        path = Path(folder) / 'config.json'
        try:
            return self.spec_from_config(read_json(path, 'a llava-hf folder has config.json'), folder)
        except (KeyError, ValueError, TypeError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f'{path}: {exc}') from None

    def spec_from_config(self, cfg: dict, folder) -> ModelSpec:
        record = cfg.get(OWN_KEY) or {}
        vision = _clean(cfg.get('vision_config') or {})
        vision.setdefault('model_type', 'clip_vision_model')
        kind = next((k for k, v in TOWERS.items() if v == vision['model_type']), None)
        if kind is None:
            raise ValueError(f"vision_config.model_type {vision['model_type']!r} is not a vlmtune tower "
                             f"(supported: {sorted(TOWERS.values())})")
        layer = cfg.get('vision_feature_layer', -2)
        if not isinstance(layer, int):
            raise ValueError(f'vision_feature_layer {layer!r}: a list of layers has no vlmtune tower setting')
        strategy = cfg.get('vision_feature_select_strategy', 'default')
        features = {v: k for k, v in STRATEGIES[kind].items()}
        if strategy not in features:
            raise ValueError(f"vision_feature_select_strategy {strategy!r} (llava-hf has 'default' and 'full')")
        feature = features[strategy]
        if cfg.get('projector_hidden_act', 'gelu') != 'gelu' or not cfg.get('multimodal_projector_bias', True):
            raise ValueError(f"projector_hidden_act {cfg.get('projector_hidden_act')!r} / multimodal_projector_bias "
                             f"{cfg.get('multimodal_projector_bias')!r}: mlp2x_gelu is exact GELU with biases")
        text = _rope_4x(_clean(cfg.get('text_config') or {}))
        text.setdefault('model_type', 'llama')
        arch = (text.get('architectures') or [None])[0] or MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(text['model_type'])
        text['architectures'] = [arch]
        folder = Path(folder)
        pre_path = folder / 'preprocessor_config.json'
        derived = {
            'vision_tower': {'type': kind, 'config': vision, 'select_layer': layer, 'select_feature': feature},
            'connector': {'type': CONNECTOR},
            'llm': {'type': family_of(arch), 'config': text},
            'image_processor': record.get('image_processor') or proc.image_processor_settings(
                read_json(pre_path) if pre_path.exists() else {}, self.next, _vision({'type': kind, 'config': vision})
                .image_size),
            'template': record.get('template') or proc.template_from_files(folder)}
        parts = {name: {**record[name], **{k: derived[name][k] for k in HELD.get(name, ())}} if name in record
                 else derived[name] for name in COMPONENTS}
        extras = dict(record.get('extras', {}))
        fields = {k: v for k, v in cfg.items() if k not in OWNED}
        if fields:
            extras[self.NAME] = {'fields': fields}
        return ModelSpec(**parts, extras=extras)

    def read_state(self, folder) -> dict:
        """Weights under 4.48's names (newer transformers' names renamed)."""
        return _legacy(read_state_dict(folder))

    def owner_caveat(self, spec: ModelSpec) -> Optional[tuple]:
        """(what, side env): why transformers as installed, or as most users have it, does not run this folder
        right although the folder is right (said at save), and the side environment (vlmtune.side_envs) whose
        transformers does (the owner checks run it there); None when nothing needs saying."""
        llm = spec.component('llm')
        if llm.head_bias:  # 4.52 on: Llava's own lm_head, unbiased; 4.48.0: Phi-2's head bias dropped at load
            return (f"transformers' Llava computes {llm.architecture}'s head bias only in 4.48.1 to 4.51 (4.52 on "
                    f"give Llava an lm_head of its own without a bias and drop it): run this folder with "
                    f"transformers 4.51", 'tf-4.51')
        if 'cache_position' not in llm.forward_arguments:  # transformers' Llava passes it to the LM
            return (f"transformers {transformers.__version__}'s Llava passes cache_position, which its "
                    f"{llm.architecture} forward does not take: run this folder with a newer transformers "
                    f"(4.57 runs it)", 'tf-4.57')
        return None

    # --- what the layout holds --------------------------------------------------------------------
    def unsupported(self, spec: ModelSpec) -> Optional[str]:
        tower = spec.vision_tower
        if tower['type'] not in TOWERS:
            return f"vision_tower {tower['type']!r} (llava-hf runs transformers' CLIP / SigLIP: {list(TOWERS)})"
        if not isinstance(tower.get('config'), dict):
            return 'a vision_tower without its config (resolve pretrained= first)'
        feature = tower.get('select_feature', DEFAULT_SELECT_FEATURE)
        if feature not in STRATEGIES[tower['type']]:
            return f"select_feature {feature!r} for {tower['type']} (llava-hf has {list(STRATEGIES[tower['type']])})"
        if self.next and not CLS_TOKENS[tower['type']]:
            return (f"a {tower['type']} tower (transformers' LlavaNext counts a CLS token with 'full' and drops a patch "
                    f"with 'default'; a tower without CLS gives it no square patch grid either way)")
        if self.next and _strategy(tower) != 'default':
            return (f"select_feature {feature!r} for {tower['type']} (LlavaNext reshapes each tile's tokens to a "
                    f"square patch grid: it needs every patch and no CLS)")
        if not isinstance(tower.get('select_layer', DEFAULT_SELECT_LAYER), int):
            return 'a list of select layers'
        if spec.connector['type'] != CONNECTOR:
            return f"connector {spec.connector['type']!r} (llava-hf's projector is {CONNECTOR}: Linear, GELU, Linear)"
        try:
            llm = spec.component('llm')
        except KeyError as exc:
            return str(exc.args[0])
        if getattr(llm, 'architecture', None) not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
            return f"LLM {spec.llm['type']!r} (llava-hf's text_config is a causal LM transformers implements)"
        problem = proc.processor_problem(spec.image_processor, self.next)
        if problem:
            return problem
        size, tower_size = spec.image_processor['image_size'], _vision(tower).image_size
        if size != tower_size:
            return f'image_size {size} with a {tower_size} px tower (llava-hf does not resize position embeddings)'
        try:
            proc.template_info(spec)
        except (KeyError, ValueError) as exc:
            return f'template: {exc.args[0]}'
        return None

    # --- key maps ---------------------------------------------------------------------------------
    def to_layout(self, state: dict, spec: ModelSpec) -> dict:
        out = _rename(state, KEYS)
        if spec.llm_config().tie_word_embeddings:  # transformers saves tied weights once
            out = spec.component('llm').untie(out, LLM_PREFIX)
        return out

    def from_layout(self, state: dict, spec: ModelSpec) -> dict:
        state = _legacy(state)
        if spec.llm_config().tie_word_embeddings:
            state = spec.component('llm').retie(state, LLM_PREFIX)
        return _rename(state, [(dst, src) for src, dst in KEYS])

    def part_of(self, key: str) -> str:
        key = _legacy({key: None}).popitem()[0]
        return next((part for prefix, part in PARTS.items() if key.startswith(prefix)), 'other')

    def load_tokenizer(self, folder):
        return _load_tokenizer(folder)

    def describe(self, folder, spec: ModelSpec) -> dict:
        folder = Path(folder)
        cfg = read_json(folder / 'config.json')
        missing = [name for name in ('preprocessor_config.json', 'processor_config.json', 'tokenizer_config.json',
                                     'generation_config.json') if not (folder / name).exists()]
        if not (folder / 'chat_template.json').exists() and not (folder / 'chat_template.jinja').exists():
            missing.append('processor chat template')
        if not (cfg.get('text_config') or {}).get('architectures'):
            missing.append("text_config.architectures (LMDeploy's TurboMind reader needs it)")
        if spec.vision_tower['type'] != 'clip':
            missing.append('LMDeploy 0.12.1 support for SigLIP towers (PyTorch engine: CLIP only; its preprocessor '
                           "counts a CLS token for 'full')")
        if spec.image_processor['type'] == 'pad':
            missing.append("pad-to-square preprocessing in transformers 4.48 (its CLIPImageProcessor crops; newer "
                           "transformers: LlavaImageProcessor)")
        return {'torch_dtype': cfg.get('torch_dtype'), 'missing': missing}

    # --- writing ----------------------------------------------------------------------------------
    def config_dict(self, spec: ModelSpec, image_token_id: int, dtype) -> dict:
        tower = spec.vision_tower
        vision, strategy, llm_cfg = _vision(tower), _strategy(tower), spec.llm_config()
        size = spec.image_processor['image_size']
        tokens = (size // vision.patch_size) ** 2 + CLS_TOKENS[tower['type']] - (strategy == 'default')
        record = {'layout': self.NAME, 'version': 1}
        for name in COMPONENTS:
            record[name] = {k: v for k, v in getattr(spec, name).items()
                            if k not in HELD.get(name, ()) and k != 'pretrained'}
        others = {k: v for k, v in spec.extras.items() if k != self.NAME}
        if others:
            record['extras'] = others
        cfg = dict(spec.extras.get(self.NAME, {}).get('fields', {}))
        cfg.update(
            architectures=[self.ARCHITECTURE], model_type=self.model_type,
            vision_config={**_clean(tower['config']), 'model_type': TOWERS[tower['type']]},
            text_config={**_clean(spec.llm['config']), 'model_type': llm_cfg.model_type,
                         'architectures': [spec.component('llm').architecture]},
            image_token_index=image_token_id, projector_hidden_act='gelu', multimodal_projector_bias=True,
            vision_feature_layer=tower.get('select_layer', DEFAULT_SELECT_LAYER),
            vision_feature_select_strategy=strategy, image_seq_length=tokens,
            tie_word_embeddings=bool(llm_cfg.tie_word_embeddings), torch_dtype=DTYPE_NAMES[dtype],
            transformers_version=transformers.__version__)
        if self.next:
            cfg['image_grid_pinpoints'] = proc.preprocessor_config(spec.image_processor, '')['image_grid_pinpoints']
        cfg[OWN_KEY] = record
        return cfg

    def write(self, staging: Path, spec: ModelSpec, state: dict, tokenizer, dtype, max_shard_bytes: int,
              base_folder=None):
        reason = self.unsupported(spec)
        if reason:
            raise CheckpointError(f'the {self.NAME} layout cannot hold {reason}')
        info = proc.template_info(spec, tokenizer)
        image_id = tokenizer.convert_tokens_to_ids(info['image_token'])
        vocab = spec.llm_config().vocab_size
        if image_id is None or image_id == tokenizer.unk_token_id or image_id >= vocab:
            raise CheckpointError(f"the tokenizer has no {info['image_token']} token inside the LLM's {vocab} rows "
                                  f'(add the template\'s image token before training)')
        write_json(staging / 'config.json', self.config_dict(spec, image_id, dtype))
        write_weights(self.to_layout(state, spec), staging, dtype, max_shard_bytes)
        tower = spec.vision_tower
        processor = proc.processor_config(self.processor_class, _vision(tower).patch_size, _strategy(tower),
                                          CLS_TOKENS[tower['type']], info['image_token'])
        proc.write_files(staging, spec, tokenizer, info, self.processor_class, processor)
        (staging / 'README.md').write_text(proc.readme(self.title, self.ARCHITECTURE, spec),
                                           encoding='utf-8')
