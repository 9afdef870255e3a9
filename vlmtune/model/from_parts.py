"""Building a model from parts (LLaVA's stage 1, InternVL's pretraining): a vision tower and an LLM, each
released on its own, and a freshly initialised connector, composed into one VisionLanguageModel.

This is model work on what the part folders gave (formats/part_folders.py reads them): the spec, the
tower's and the LLM's weights under the package's names, and a trained connector where a previous stage
left one. When the family's image tokens grew the tokenizer, the new input and output embedding rows
start at the mean of the old ones (the official InternVL script sets the output rows so; transformers'
mean resizing samples the input rows around the same mean).
"""
import torch

from .spec import ModelSpec
from .vlm import VisionLanguageModel

def grow_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    if weight.shape[0] >= rows:
        return weight
    mean = weight.float().mean(0, keepdim=True).to(weight.dtype)
    return torch.cat([weight, mean.expand(rows - weight.shape[0], -1)])


def fresh_init(part: torch.nn.Module) -> None:
    """A part that starts from scratch: PyTorch's default init, then the component's own if it has one."""
    for module in part.modules():
        if hasattr(module, 'reset_parameters'):
            module.reset_parameters()
    if hasattr(part, '_init_weights'):
        part.apply(part._init_weights)


class PartsMismatch(ValueError):
    """The part folders' weights do not fit the configs they came with."""


def compose(spec: ModelSpec, llm_state: dict, tower_state: dict = None, connector_state: dict = None,
            attn_implementation=None) -> VisionLanguageModel:
    """The composed model: LLM weights (LLM-relative keys; embeddings grown to the spec's vocabulary), tower
    weights (tower-relative keys) or a fresh tower, a trained connector (model-relative keys: `connector.*`,
    `image_newline`) or a fresh one."""
    model = VisionLanguageModel(spec, attn_implementation, init_weights=False)
    fresh_init(model.connector)
    state = dict(connector_state or {})
    if tower_state is not None:
        state.update({'vision_tower.' + k: v for k, v in tower_state.items()})
    else:
        fresh_init(model.vision_tower)
    vocab, entry = spec.llm['config']['vocab_size'], spec.component('llm')
    if spec.llm_config().tie_word_embeddings:  # an LLM folder saves a tied head once, as its embedding
        llm_state = entry.retie(llm_state)
    embeddings = (entry.embed_key, entry.head_key)
    state.update({'llm.' + k: grow_rows(v, vocab) if k in embeddings else v for k, v in llm_state.items()})
    result = model.load_state_dict(state, strict=False)
    expected_missing = set() if connector_state else \
        {k for k in model.state_dict() if k.startswith('connector.') or k == 'image_newline'}
    if tower_state is None:
        expected_missing |= {k for k in model.state_dict() if k.startswith('vision_tower.')}
    missing = set(result.missing_keys) - expected_missing
    if missing or result.unexpected_keys:
        key = sorted(missing or result.unexpected_keys)[0]
        raise PartsMismatch(f'parts do not match their configs ({len(missing)} missing, '
                            f'{len(result.unexpected_keys)} unexpected weights, e.g. {key!r})')
    return model
