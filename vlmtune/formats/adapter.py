"""Unmerged LoRA (LLaVA's `--model-base`): a PEFT adapter folder for the LLM, named in the base folder's
layout, beside a reference to that base. `vlmtune convert --adapter-only` writes it; the torch pipeline
loads base + adapter; vLLM serves it with --enable-lora; TurboMind takes merged folders only.

Folder: adapter_config.json (PEFT's, base_model_name_or_path = the base folder) and
adapter_model.safetensors with keys base_model.model.<module in the base layout>.lora_A/B.weight, the
names PEFT and vLLM use for the whole model (e.g. language_model.model.layers.0.self_attn.q_proj).
"""
import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .common import CheckpointError

PEFT_PREFIX = 'base_model.model.'
LLM_ATTR = 'llm'


def is_adapter(folder) -> bool:
    return (Path(folder) / 'adapter_config.json').is_file() and not (Path(folder) / 'config.json').is_file()


def _module_map(adapter, spec, modules, shapes, forward=True) -> dict:
    """Module path (package names) -> module path in the layout (or back), through the layout's own key
    map; a module the layout fuses or splits has no single counterpart and is refused."""
    mapped = {}
    convert = adapter.to_layout if forward else adapter.from_layout
    for module in modules:
        out = convert({f'{module}.weight': torch.empty(shapes[module])}, spec)
        keys = [k for k in out if k.endswith('.weight')]
        if len(keys) != 1 or tuple(out[keys[0]].shape) != tuple(shapes[module]):
            raise CheckpointError(f'{module}: the layout stores it fused or split ({list(out)}); an adapter cannot '
                                  f'name it there — convert without --adapter-only (merged weights)')
        mapped[module] = keys[0][:-len('.weight')]
    return mapped


def write_adapter(model, layout_name: str, base_folder, out) -> Path:
    """model: the trained VLM whose LLM is a PeftModel and nothing else trained."""
    from peft import PeftModel, get_peft_model_state_dict
    from . import _adapter
    llm = getattr(model, LLM_ATTR)
    if not isinstance(llm, PeftModel):
        raise CheckpointError('--adapter-only needs an LLM trained with LoRA (llm=lora); this run trained it '
                              'otherwise')
    trained_elsewhere = sorted({name.split('.')[0] for name, p in model.named_parameters()
                                if p.requires_grad and not name.startswith(f'{LLM_ATTR}.')})
    if trained_elsewhere:
        raise CheckpointError(f'--adapter-only: the run also trained {", ".join(trained_elsewhere)}, which an LLM '
                              f'adapter cannot carry; convert without --adapter-only (merged folder)')
    state = get_peft_model_state_dict(llm)
    weights = {k: v for k, v in state.items() if '.lora_A.' in k or '.lora_B.' in k}
    if len(weights) != len(state):
        raise CheckpointError(f'--adapter-only: the adapter holds more than LoRA matrices '
                              f'({sorted(set(state) - set(weights))[:3]}); convert merged instead')
    base_layer = {name: module for name, module in llm.base_model.model.named_modules()}
    ours = {}
    for key in weights:
        module = key[len(PEFT_PREFIX):].split('.lora_')[0]
        ours[f'{LLM_ATTR}.{module}'] = tuple(base_layer[module].base_layer.weight.shape)
    names = _module_map(_adapter(layout_name), model.spec, ours, ours)
    out = Path(out)
    out.mkdir(parents=True)
    renamed = {}
    for key, value in weights.items():
        module, _, rest = key[len(PEFT_PREFIX):].partition('.lora_')
        renamed[f'{PEFT_PREFIX}{names[f"{LLM_ATTR}.{module}"]}.lora_{rest}'] = value.detach().float().contiguous()
    save_file(renamed, str(out / 'adapter_model.safetensors'), metadata={'format': 'pt'})
    config = llm.peft_config['default'].to_dict()
    # the base relative to the adapter folder: the two folders move together (an absolute path pins a machine)
    base_path = os.path.relpath(Path(base_folder).resolve(), out.resolve())
    config.update(base_model_name_or_path=base_path, inference_mode=True,
                  target_modules=sorted({n.rsplit('.', 1)[-1] for n in names.values()}))
    config = {k: (sorted(v) if isinstance(v, set) else v) for k, v in config.items()}
    (out / 'adapter_config.json').write_text(json.dumps(config, indent=2, default=str))
    (out / 'README.md').write_text(f'LoRA adapter (PEFT) for the LLM of `{config["base_model_name_or_path"]}` '
                                   f'({layout_name} layout).\n\n    vlmtune chat {out}\n    vlmtune serve BASE '
                                   f'--lora NAME={out}   # vLLM --enable-lora\n')
    return out


def base_of(folder) -> Path:
    config = json.loads((Path(folder) / 'adapter_config.json').read_text())
    base = Path(folder) / (config.get('base_model_name_or_path') or '')  # relative to the adapter, or absolute
    if not (base / 'config.json').exists() and not base.is_dir():
        raise CheckpointError(f'{folder}: its base {base} is not there; the adapter needs the base folder it was '
                              f'trained on (adapter_config.json: base_model_name_or_path)')
    return base.resolve()


def apply_adapter(model, folder) -> None:
    """Wrap the loaded base model's LLM with the adapter (PEFT), unmerged."""
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from . import _adapter, layout_of
    folder = Path(folder)
    config = json.loads((folder / 'adapter_config.json').read_text())
    state = load_file(str(folder / 'adapter_model.safetensors'))
    layout_modules = {k[len(PEFT_PREFIX):].split('.lora_')[0] for k in state}
    # The adapted weight's shape: (rows of lora_B, columns of lora_A).
    shapes = {m: (state[f'{PEFT_PREFIX}{m}.lora_B.weight'].shape[0], state[f'{PEFT_PREFIX}{m}.lora_A.weight'].shape[1])
              for m in layout_modules}
    ours = _module_map(_adapter(layout_of(base_of(folder))), model.spec, layout_modules, shapes, forward=False)
    fields = LoraConfig.__dataclass_fields__
    skipped = ('target_modules', 'peft_type', 'task_type', 'base_model_name_or_path')  # the base is ours, loaded
    lora = LoraConfig(**{k: v for k, v in config.items() if k in fields and k not in skipped},
                      target_modules=sorted({o[len(LLM_ATTR) + 1:] for o in ours.values()}))
    wrapped = get_peft_model(getattr(model, LLM_ATTR), lora)
    renamed = {f'{PEFT_PREFIX}{ours[m][len(LLM_ATTR) + 1:]}.lora_{rest}': v
               for key, v in state.items() for m, _, rest in [key[len(PEFT_PREFIX):].partition('.lora_')]}
    result = set_peft_model_state_dict(wrapped, renamed)
    if getattr(result, 'unexpected_keys', None):
        raise CheckpointError(f'{folder}: adapter keys the model does not have: {result.unexpected_keys[:3]}')
    setattr(model, LLM_ATTR, wrapped.to(next(model.parameters()).dtype))
    model.eval()


def load_adapted(folder, dtype=torch.float32, device='cpu', spec_overrides=None):
    """(model, tokenizer): the adapter folder's base, loaded, with the adapter applied (unmerged)."""
    from . import load
    model, tokenizer = load(base_of(folder), dtype=dtype, device=device, spec_overrides=spec_overrides)
    apply_adapter(model, folder)
    return model.to(device), tokenizer
