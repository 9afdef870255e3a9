"""Per-part trainability: `vision_tower`, `connector` and `llm` each `frozen | lora | full | partial:K`; the LLM
also `moe` (MoE-LLaVA's stage 3: every MoE layer's experts and router train, all else frozen) or
`moe_lora` (LoRA on the experts' Linears, routers trained fully).

The components say what can train: each declares its LoRA targets and its blocks (the vision
tower's / LLM's layers). `partial:K` trains blocks K.. fully and freezes the rest, TinyLLaVA
Factory's "partially tune" (e.g. the last ViT layers). LoRA targets that match nothing are an
error, and what matched is printed.
"""
import re
from dataclasses import dataclass, field
from typing import Dict, List

from torch import nn

MODES = ('frozen', 'lora', 'full', 'partial:K')
MOE_MODES = ('moe', 'moe_lora')  # llm only
# The names recipes used before the one vocabulary; a recipe that still says them gets the new name.
OLD_NAMES = {'vit': 'vision_tower', 'projector': 'connector', 'vit_lora': 'vision_tower_lora'}
_PARTIAL = re.compile(r'^partial:(\d+)$')


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32      # official: alpha = 2r
    dropout: float = 0.05
    # Modules trained fully beside the LoRA adapters (peft's modules_to_save), e.g. ['mlp.gate']: an MoE's routers.
    modules_to_save: List[str] = field(default_factory=list)


@dataclass
class TrainabilityReport:
    modes: Dict[str, str]
    lora_matches: Dict[str, List[str]] = field(default_factory=dict)
    trainable: int = 0
    total: int = 0

    def summary(self) -> str:
        lines = ['trainability: ' + ', '.join(f'{part}={mode}' for part, mode in self.modes.items())]
        for part, names in self.lora_matches.items():
            shown = ', '.join(names[:6]) + (f', ... ({len(names)} modules)' if len(names) > 6 else '')
            lines.append(f'  LoRA on {part}: {shown}')
        lines.append(f'  trainable parameters: {self.trainable:,} / {self.total:,} '
                     f'({100.0 * self.trainable / max(self.total, 1):.2f}%)')
        return '\n'.join(lines)


def renamed_parts(settings: dict, where: str = 'model') -> None:
    """A recipe's old part names (vit, projector, vit_lora) -> one clear error with the new ones."""
    old = [name for name in OLD_NAMES if name in settings]
    if old:
        raise ValueError(f'{where}: ' + ', '.join(f'{where}.{name} is now {where}.{OLD_NAMES[name]}' for name in old)
                         + ' (the parts are vision_tower / connector / llm everywhere); rename them in the recipe')


def validate_modes(**modes) -> Dict[str, str]:
    for part, mode in modes.items():
        if mode in MOE_MODES and part == 'llm':
            continue
        if mode not in MODES[:3] and not _PARTIAL.match(str(mode)):
            raise ValueError(f'{part}={mode!r} is not a trainability mode; choose one of {list(MODES)} '
                             f'(llm also {list(MOE_MODES)}) '
                             f'(partial:K trains blocks K.. of the part)')
    return modes


def lora_targets(model, part: str) -> List[str]:
    """The LoRA targets the component in `part` declares."""
    if part == 'llm':
        return model.spec.component('llm').lora_targets
    return getattr(getattr(model, part), 'lora_targets', [])


def blocks(model, part: str) -> List[nn.Module]:
    """The blocks (layers) `partial:K` counts, as the component declares them."""
    module = getattr(model, part)
    if part == 'llm':
        return model.spec.component('llm').blocks(module)
    if not hasattr(module, 'blocks'):
        raise ValueError(f'{part}=partial:K: the {part} {type(module).__name__} declares no blocks')
    return module.blocks()


def _wrap_lora(module: nn.Module, targets: List[str], settings: LoraSettings, part: str):
    from peft import LoraConfig, get_peft_model
    names = [name for name, sub in module.named_modules()
             if isinstance(sub, nn.Linear) and any(name == t or name.endswith('.' + t) for t in targets)]
    if not names:
        raise ValueError(f'LoRA on {part}: no Linear module matches targets {targets}')
    every = [name for name, _ in module.named_modules()]
    unmatched = [t for t in settings.modules_to_save if not any(n == t or n.endswith('.' + t) for n in every)]
    if unmatched:
        raise ValueError(f'LoRA on {part}: modules_to_save {unmatched} match no module (e.g. {every[-1]!r})')
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=names, bias='none', modules_to_save=list(settings.modules_to_save) or None)
    return get_peft_model(module, config), names + [f'{t} (full)' for t in settings.modules_to_save]


def apply_trainability(model, vision_tower='frozen', connector='full', llm='lora', lora: LoraSettings = None,
                       vision_tower_lora: LoraSettings = None) -> TrainabilityReport:
    """Freeze / unfreeze / LoRA-wrap the parts of a VisionLanguageModel in place."""
    modes = validate_modes(vision_tower=vision_tower, connector=connector, llm=llm)
    lora = lora or LoraSettings()
    report = TrainabilityReport(modes=modes)
    model.requires_grad_(False)
    for part, mode in modes.items():
        if mode == 'full':
            getattr(model, part).requires_grad_(True)
        elif mode == 'lora':
            settings = vision_tower_lora or lora if part == 'vision_tower' else lora
            wrapped, names = _wrap_lora(getattr(model, part), lora_targets(model, part), settings, part)
            setattr(model, part, wrapped)
            report.lora_matches[part] = names
        elif mode in MOE_MODES:
            report.lora_matches.update(_train_moe(model, mode, lora))
        elif mode != 'frozen':
            first = int(_PARTIAL.match(mode).group(1))
            layers = blocks(model, part)
            if not 0 <= first < len(layers):
                raise ValueError(f'{part}={mode}: the part has {len(layers)} blocks; K must be 0..{len(layers) - 1}')
            for layer in layers[first:]:
                layer.requires_grad_(True)
    if hasattr(model, 'image_newline') and modes['connector'] != 'frozen':  # trains with the connector
        model.image_newline.requires_grad_(True)
    report.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report.total = sum(p.numel() for p in model.parameters())
    return report


def moe_layers(llm) -> List[nn.Module]:
    """Sparse FFN blocks (upcycled or native): a module with `experts` and a router `gate`."""
    return [m for m in llm.modules() if isinstance(getattr(m, 'experts', None), nn.ModuleList)
            and isinstance(getattr(m, 'gate', None), nn.Linear)]


def _train_moe(model, mode: str, lora: LoraSettings) -> Dict[str, List[str]]:
    blocks = moe_layers(model.llm)
    if not blocks:
        raise ValueError(f'llm={mode}: the LLM has no MoE layers; upcycle it with the spec setting llm.moe '
                         f'(e.g. spec=dict(llm=dict(moe=dict(num_experts=4, top_k=2))))')
    if mode == 'moe':
        for block in blocks:
            block.experts.requires_grad_(True)
            block.gate.requires_grad_(True)
        return {}
    names = {id(m): n for n, m in model.llm.named_modules()}
    experts = sorted({f'{names[id(b)]}.experts.{n}' for b in blocks for n, sub in b.experts.named_modules()
                      if isinstance(sub, nn.Linear)})
    settings = LoraSettings(lora.r, lora.alpha, lora.dropout, [names[id(b)] + '.gate' for b in blocks])
    wrapped, matched = _wrap_lora(model.llm, experts, settings, 'llm')
    model.llm = wrapped
    return {'llm': matched}
