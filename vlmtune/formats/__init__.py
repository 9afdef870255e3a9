"""Checkpoint layouts. One adapter per on-disk layout (the members of `vlmtune.interfaces.Layout`:
`detect`, `read_spec`, `read_state` under the layout's key names, `to_layout` / `from_layout` key maps,
`unsupported`, `write`, `load_tokenizer`, `describe`), registered with an ORDER in `registry.py`.
`load`, `save` and `read_spec` here are the entry points the rest of the package uses; the model
itself never sees a layout's key names.
"""
import json
from pathlib import Path
from typing import Optional

import torch

from ..model.moe import expand_dense_state
from ..model.moe.export import export_native_moe
from ..model.spec import ModelSpec
from ..model.vlm import VisionLanguageModel
from . import blip2_hf, composite, internvl, internvl_hf, llava_hf, llava_next_hf, vlmtune_layout  # noqa: F401
from .common import CheckpointError, prepare_output, staged_folder, torch_dtype
from .registry import layout_named, layouts, register_layout  # noqa: F401  (register_layout: for users' layouts)


def _adapter(layout):
    return layout_named(layout)


def detect(folder):
    """The adapter of the layout a folder is in (asked in ORDER); a one-line error naming what was found."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f'{folder}: not a directory (expected a checkpoint folder)')
    for adapter in layouts():
        if adapter.detect(folder):
            return adapter
    config = folder / 'config.json'
    if not config.exists():
        raise CheckpointError(f'{config}: missing (a checkpoint folder has config.json)')
    try:
        arch = (json.loads(config.read_text(encoding='utf-8')).get('architectures') or [None])[0]
    except (ValueError, AttributeError) as exc:
        raise CheckpointError(f'{config}: not valid JSON ({exc})') from None
    known = [a.ARCHITECTURE for a in layouts() if getattr(a, 'ARCHITECTURE', None)]
    raise CheckpointError(f'{config}: architectures[0] is {arch!r}; supported: {known}')


def layout_of(folder) -> str:
    return detect(folder).NAME


def read_spec(folder) -> ModelSpec:
    """The folder's composition, from its config files only (no weights)."""
    return detect(folder).read_spec(folder)


def load_tokenizer(folder):
    try:
        return detect(folder).load_tokenizer(folder)
    except (OSError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f'{folder}: cannot load tokenizer ({exc})') from None


def load_weights(model: VisionLanguageModel, state: dict, adapter, where) -> None:
    """Check a layout state dict against the model (names in the layout's terms), then load it."""
    expected = {k: tuple(v.shape) for k, v in adapter.to_layout(model.state_dict(), model.spec).items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise CheckpointError(f'{where}: weights missing {len(missing)} key(s), first: {missing[0]!r}')
    if unexpected:
        raise CheckpointError(f'{where}: unexpected weight key(s) {len(unexpected)}, first: {unexpected[0]!r}')
    for key, tensor in state.items():
        if tuple(tensor.shape) != expected[key]:
            raise CheckpointError(f'{where}: shape mismatch for {key!r}: checkpoint {tuple(tensor.shape)} '
                                  f'vs config {expected[key]}')
    model.load_state_dict(adapter.from_layout(state, model.spec), strict=True)


def load(folder, dtype=torch.float32, device='cpu', attn_implementation=None, with_tokenizer=True,
         spec_overrides=None):
    """-> (VisionLanguageModel in eval mode, tokenizer or None), from a folder of any supported layout.
    `spec_overrides` (recipe settings) apply on top of the folder's spec."""
    folder = Path(folder)
    adapter = detect(folder)
    base = adapter.read_spec(folder)
    spec = base.override(spec_overrides)
    model = VisionLanguageModel(spec, attn_implementation, init_weights=False)
    if spec.llm.get('moe') and not base.llm.get('moe'):  # MoE-tuning from a dense folder: upcycle its weights
        dense = VisionLanguageModel(base, attn_implementation, init_weights=False)
        load_weights(dense, adapter.read_state(folder), adapter, folder)
        model.load_state_dict(expand_dense_state(dense.state_dict(), model.state_dict()), strict=True)
    else:
        load_weights(model, adapter.read_state(folder), adapter, folder)
    model.to(device=device, dtype=dtype).eval()
    tokenizer = load_tokenizer(folder) if with_tokenizer else None
    if tokenizer is not None:
        model.set_tokenizer(tokenizer)
    return model, tokenizer


def cannot_hold(layout: str, spec: ModelSpec) -> Optional[str]:
    """Why `layout` cannot hold `spec` (its adapter's reason, or a non-default EXIF orientation rule
    (data/image/orientation.py) when the layout records none: RECORDS_EXIF_RULE), or None."""
    adapter = _adapter(layout)
    reason = adapter.unsupported(spec)
    if reason is None and spec.exif_rule != 'ignore' and not getattr(adapter, 'RECORDS_EXIF_RULE', False):
        reason = f"the EXIF rule {spec.exif_rule!r} (it records none; its users' tools ignore EXIF)"
    return reason


def holds(layout: str, spec: ModelSpec) -> bool:
    return cannot_hold(layout, spec) is None


def _caveat(layout: str, spec: ModelSpec) -> Optional[tuple]:
    caveat = getattr(_adapter(layout), 'owner_caveat', None)  # an optional layout member
    return caveat(spec) if caveat else None


def owner_caveat(layout: str, spec: ModelSpec) -> Optional[str]:
    """Why the layout's owner, as installed here or as most users have it, does not run this folder right
    although the folder is right (said at save), or None."""
    caveat = _caveat(layout, spec)
    return caveat[0] if caveat else None


def owner_env(layout: str, spec: ModelSpec) -> Optional[str]:
    """The side environment (vlmtune.side_envs) whose owner runs such a folder right, where owner_caveat speaks."""
    caveat = _caveat(layout, spec)
    return caveat[1] if caveat else None


def natural_layout(spec: ModelSpec, base_folder=None) -> str:
    """The base folder's layout when it can hold the composition, else the first that can and whose owner, as
    installed, runs it (else the first that can)."""
    if base_folder is not None and Path(base_folder).is_dir():
        base = layout_of(base_folder)
        if holds(base, spec):
            return base
    holding = [adapter.NAME for adapter in layouts() if holds(adapter.NAME, spec)]
    return next((name for name in holding if owner_caveat(name, spec) is None), holding[0])


def save(model: VisionLanguageModel, tokenizer, out, layout=None, dtype='bf16', max_shard_size_gb: float = 5.0,
         base_folder=None, overwrite=False) -> Path:
    """Write `model` in `layout` (default: its natural one) at `out`, atomically."""
    spec, state = model.spec, model.state_dict()
    if spec.llm.get('moe') and layout != vlmtune_layout.NAME:  # family layouts hold the native MoE architecture
        try:
            spec, state = export_native_moe(spec, state)
        except ValueError as exc:
            raise CheckpointError(f'{exc}') from None
    adapter = _adapter(layout or natural_layout(spec, base_folder))  # a name, or a dotted path to a user's layout
    layout = adapter.NAME
    reason = cannot_hold(layout, spec)
    if reason:
        holding = [adapter.NAME for adapter in layouts() if holds(adapter.NAME, spec)]
        raise CheckpointError(f'the {layout} layout cannot hold {reason}; layouts that can: {holding}')
    if base_folder is not None and Path(base_folder).is_dir() and layout_of(base_folder) != layout:
        base_folder = None  # a base folder's own files belong to its layout
    prepare_output(Path(out), overwrite)
    with staged_folder(out, overwrite) as staging:
        adapter.write(staging, spec, state, tokenizer, torch_dtype(dtype), int(max_shard_size_gb * 1024 ** 3),
                      base_folder)
    return Path(out)


def data_spec_for_folder(folder, max_tiles=None, max_length=4096):
    """What the data path needs from a checkpoint folder (config and tokenizer only)."""
    overrides = {'image_processor': {'max_tiles': max_tiles}} if max_tiles else None
    return read_spec(folder).override(overrides).data_spec(load_tokenizer(folder), max_length)


__all__ = ['CheckpointError', 'data_spec_for_folder', 'detect', 'layout_of', 'layouts', 'load', 'load_tokenizer',
           'natural_layout', 'owner_caveat', 'owner_env', 'read_spec', 'register_layout', 'save']
