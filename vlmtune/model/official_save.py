"""Write an official-format InternVL folder: config.json (every official field + auto_map),
safetensors (bf16 by default, sharded above a size), tokenizer with chat_template,
generation_config.json and self-contained remote code. Written to a temporary sibling folder and
renamed into place, so a failure never leaves a half-written folder."""
import json
import shutil
import uuid
from pathlib import Path

import torch
import transformers
from safetensors.torch import save_file

from ..formats.internvl_remote.conversation import get_conv_template
from .tokenizer_files import save_tokenizer

REMOTE_DIR = Path(__file__).parents[1] / 'formats' / 'internvl_remote'
REMOTE_FILES = ['configuration_internvl_chat.py', 'configuration_intern_vit.py', 'modeling_internvl_chat.py',
                'modeling_intern_vit.py', 'conversation.py',
                # modeling_internvl_chat.py imports these for InternLM2 LLMs, so every folder ships them.
                'configuration_internlm2.py', 'modeling_internlm2.py']
INTERNLM2_TOKENIZER_FILE = 'tokenization_internlm2.py'
AUTO_MAP = {'AutoConfig': 'configuration_internvl_chat.InternVLChatConfig',
            'AutoModel': 'modeling_internvl_chat.InternVLChatModel',
            'AutoModelForCausalLM': 'modeling_internvl_chat.InternVLChatModel'}
INTERNLM2_LLM_AUTO_MAP = {'AutoConfig': 'configuration_internlm2.InternLM2Config',
                          'AutoModel': 'modeling_internlm2.InternLM2ForCausalLM',
                          'AutoModelForCausalLM': 'modeling_internlm2.InternLM2ForCausalLM'}
DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}
DTYPE_NAMES = {torch.bfloat16: 'bfloat16', torch.float16: 'float16', torch.float32: 'float32'}


def official_config_dict(config, dtype: torch.dtype) -> dict:
    cfg = config.to_dict()
    cfg.update(architectures=['InternVLChatModel'], auto_map=AUTO_MAP, model_type='internvl_chat',
               torch_dtype=DTYPE_NAMES[dtype], transformers_version=transformers.__version__,
               use_backbone_lora=0, use_llm_lora=0, tie_word_embeddings=False, pad2square=cfg.get('pad2square', False),
               _commit_hash=None)
    cfg['vision_config']['architectures'] = ['InternVisionModel']
    cfg['vision_config']['model_type'] = 'intern_vit_6b'
    cfg['vision_config']['torch_dtype'] = DTYPE_NAMES[dtype]
    llm = cfg['llm_config']
    llm['torch_dtype'] = DTYPE_NAMES[dtype]
    llm['tie_word_embeddings'] = False
    if llm['architectures'][0] == 'InternLM2ForCausalLM':
        llm['auto_map'] = INTERNLM2_LLM_AUTO_MAP
    if cfg.get('system_message', '') is None:  # a null system message renders as "None" officially
        cfg.pop('system_message')
    return cfg


def write_weights(state: dict, out: Path, dtype: torch.dtype, max_shard_bytes: int) -> None:
    shards, current, current_bytes = [], {}, 0
    for key, tensor in state.items():
        tensor = tensor.detach().to('cpu', dtype if tensor.is_floating_point() else tensor.dtype).contiguous()
        size = tensor.numel() * tensor.element_size()
        if current and current_bytes + size > max_shard_bytes:
            shards.append(current)
            current, current_bytes = {}, 0
        current[key] = tensor
        current_bytes += size
    shards.append(current)
    if len(shards) == 1:
        save_file(shards[0], str(out / 'model.safetensors'), metadata={'format': 'pt'})
        return
    weight_map, total = {}, 0
    for i, shard in enumerate(shards, 1):
        name = f'model-{i:05d}-of-{len(shards):05d}.safetensors'
        save_file(shard, str(out / name), metadata={'format': 'pt'})
        for key, tensor in shard.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
    index = {'metadata': {'total_size': total}, 'weight_map': weight_map}
    (out / 'model.safetensors.index.json').write_text(json.dumps(index, indent=2), encoding='utf-8')


def generation_config_dict(config, tokenizer) -> dict:
    llm = config.llm_config
    end_token = get_conv_template(config.template).sep.strip()
    eos = llm.eos_token_id if isinstance(llm.eos_token_id, list) else [llm.eos_token_id]
    eos = [e for e in eos if e is not None]
    end_id = tokenizer.convert_tokens_to_ids(end_token)
    if end_id not in eos:
        eos.append(end_id)
    return {'_from_model_config': True, 'bos_token_id': llm.bos_token_id, 'eos_token_id': eos,
            'pad_token_id': tokenizer.pad_token_id, 'transformers_version': transformers.__version__}


def copy_remote_code(out: Path, llm_architecture: str, base_folder=None) -> None:
    base = Path(base_folder) if base_folder else None
    # A base folder that carries official remote code keeps its own files.
    source = base if base is not None and (base / 'modeling_internvl_chat.py').exists() else REMOTE_DIR
    names = list(REMOTE_FILES)
    if llm_architecture == 'InternLM2ForCausalLM':
        names.append(INTERNLM2_TOKENIZER_FILE)
    if source is base:
        names = sorted({p.name for p in base.glob('*.py')} | {n for n in names if not (base / n).exists()})
    for name in names:
        src = source / name if (source / name).exists() else REMOTE_DIR / name
        shutil.copyfile(src, out / name)


def prepare_output(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise FileExistsError(f'{out}: exists and is not a folder')
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f'{out}: folder is not empty; pass overwrite=True (--overwrite) to replace it')


def save_official(model, tokenizer, out_dir, dtype='bf16', max_shard_size_gb: float = 5.0, base_folder=None,
                  overwrite=False) -> Path:
    """Save `model` (a VisionLanguageModel) and its tokenizer as an official folder at `out_dir`."""
    out = Path(out_dir)
    torch_dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    prepare_output(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f'.{out.name}.tmp-{uuid.uuid4().hex[:8]}'
    tmp.mkdir()
    try:
        config = model.config
        cfg = official_config_dict(config, torch_dtype)
        (tmp / 'config.json').write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding='utf-8')
        write_weights(model.state_dict(), tmp, torch_dtype, int(max_shard_size_gb * 1024 ** 3))
        save_tokenizer(tokenizer, tmp, config.template, getattr(config, 'system_message', None))
        gen = generation_config_dict(config, tokenizer)
        (tmp / 'generation_config.json').write_text(json.dumps(gen, indent=2), encoding='utf-8')
        copy_remote_code(tmp, config.llm_config.architectures[0], base_folder)
        if out.exists():
            old = out.parent / f'.{out.name}.old-{uuid.uuid4().hex[:8]}'
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
