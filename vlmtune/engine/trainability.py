"""Per-part trainability: `vit`, `projector` and `llm` each `frozen | lora | full`.

LoRA targets are resolved per backbone (the LLM registry entry names them; the ViT and projector
targets are fixed), what matched is printed, and a target list that matches nothing is an error.
"""
from dataclasses import dataclass, field
from typing import Dict, List

from torch import nn

MODES = ('frozen', 'lora', 'full')
VIT_LORA_TARGETS = ['attn.qkv', 'attn.proj', 'mlp.fc1', 'mlp.fc2']
PROJECTOR_LORA_TARGETS = ['1', '3']  # mlp1.1 and mlp1.3, the two Linear layers


@dataclass
class LoraSettings:
    r: int = 16
    alpha: int = 32      # official: alpha = 2r
    dropout: float = 0.05


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


def validate_modes(**modes) -> Dict[str, str]:
    for part, mode in modes.items():
        if mode not in MODES:
            raise ValueError(f'{part}={mode!r} is not a trainability mode; choose one of {list(MODES)}')
    return modes


def _wrap_lora(module: nn.Module, targets: List[str], settings: LoraSettings, part: str):
    from peft import LoraConfig, get_peft_model
    names = [name for name, sub in module.named_modules()
             if isinstance(sub, nn.Linear) and any(name == t or name.endswith('.' + t) for t in targets)]
    if not names:
        raise ValueError(f'LoRA on {part}: no Linear module matches targets {targets}')
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=names, bias='none')
    return get_peft_model(module, config), names


def apply_trainability(model, vit='frozen', projector='full', llm='lora', lora: LoraSettings = None,
                       vit_lora: LoraSettings = None) -> TrainabilityReport:
    """Freeze / unfreeze / LoRA-wrap the parts of a VisionLanguageModel in place."""
    modes = validate_modes(vit=vit, projector=projector, llm=llm)
    lora = lora or LoraSettings()
    report = TrainabilityReport(modes=modes)
    model.requires_grad_(False)
    parts = {'vit': ('vision_model', VIT_LORA_TARGETS, vit_lora or lora),
             'projector': ('mlp1', PROJECTOR_LORA_TARGETS, lora),
             'llm': ('language_model', model.llm_entry.lora_targets, lora)}
    for part, (attr, targets, settings) in parts.items():
        mode = modes[part]
        if mode == 'full':
            getattr(model, attr).requires_grad_(True)
        elif mode == 'lora':
            wrapped, names = _wrap_lora(getattr(model, attr), targets, settings, part)
            setattr(model, attr, wrapped)
            report.lora_matches[part] = names
    report.trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    report.total = sum(p.numel() for p in model.parameters())
    return report
