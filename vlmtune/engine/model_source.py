"""Where a recipe's model comes from: a checkpoint folder of any layout, which supplies the whole
composition (tower, connector, LLM, processor, template) with the recipe's `spec` settings on top; or,
without one, the recipe's `parts` (formats/part_folders.py reads them, model/from_parts.py composes).

A recipe written before `parts=` existed passes its parts as `spec=`: a spec that names part folders
(`pretrained=`), or any spec without a checkpoint, is read as the parts.
"""
import torch

from ..formats import load, load_tokenizer, read_spec
from ..formats.common import CheckpointError
from ..formats.part_folders import llm_state, resolve_parts, tower_state, trained_connector
from ..model.from_parts import PartsMismatch, compose
from ..model.spec import SpecError


def names_part_folders(spec) -> bool:
    return any(isinstance(v, dict) and 'pretrained' in v for v in (spec or {}).values())


def split_sources(checkpoint=None, parts: dict = None, spec: dict = None):
    """-> (parts, spec overrides) as the model is built: with a checkpoint folder, no parts."""
    if parts is None and (names_part_folders(spec) or not checkpoint):  # a recipe from before `parts=`
        parts, spec = spec, None
    if checkpoint:
        return None, spec
    if not parts:
        raise SpecError('no model: set checkpoint=FOLDER (--checkpoint), or parts= with the part folders')
    return parts, spec


def resolve_spec(checkpoint=None, spec: dict = None, parts: dict = None):
    """(ModelSpec, tokenizer) of a recipe's model without loading weights."""
    parts, spec = split_sources(checkpoint, parts, spec)
    if checkpoint:
        return read_spec(checkpoint).override(spec), load_tokenizer(checkpoint)
    model_spec, tokenizer = resolve_parts(parts)
    return model_spec.override(spec), tokenizer


def build_model(checkpoint=None, spec: dict = None, dtype=torch.float32, device='cpu', attn_implementation=None,
                parts: dict = None):
    """(VisionLanguageModel in eval mode, tokenizer) of a recipe: a folder of any layout, or parts."""
    parts, spec = split_sources(checkpoint, parts, spec)
    if checkpoint:
        return load(checkpoint, dtype=dtype, device=device, attn_implementation=attn_implementation,
                    spec_overrides=spec)
    model_spec, tokenizer = resolve_parts(parts)
    model_spec = model_spec.override(spec)
    tower = model_spec.vision_tower
    try:
        model = compose(model_spec, llm_state(model_spec.llm),
                        tower_state(tower) if 'pretrained' in tower else None,
                        trained_connector(model_spec.connector.get('pretrained')), attn_implementation)
    except PartsMismatch as exc:
        raise CheckpointError(str(exc)) from None
    model.to(device=device, dtype=dtype).eval()
    model.set_tokenizer(tokenizer)
    return model, tokenizer
