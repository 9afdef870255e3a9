"""Training checkpoint -> a checkpoint folder in the layout the recipe asks for, proving itself.

Rebuild the model from the recipe, load the trained weights (an mmengine `.pth` or a DeepSpeed
ZeRO folder `iter_N.pth/`), merge LoRA in fp32, write the folder with the training settings
(template, tiling limits, image size) in its config — in `--to LAYOUT`, else the recipe's
`save_layout`, else the base folder's layout — then reload it and compare logits on a fixed probe
(image + two-turn prompt) with the in-memory unmerged model. The folder is staged under a
temporary name and only renamed into place when the check passes.
"""
import shutil
import uuid
from pathlib import Path

import torch
from tqdm import tqdm

from ..formats import CheckpointError, layout_of, load, natural_layout, owner_caveat, save
from ..formats.adapter import load_adapted, write_adapter
from ..formats.common import prepare_output, read_training_checkpoint as read_trained_weights
from ..formats.registry import layout_named
from .launch import load_recipe
from ..model.vlm import PARTS

# Max |logit| difference allowed between the reloaded folder and the unmerged model, per saved dtype,
# relative to the probe's logit scale (max |logit|).
TOLERANCE = {'fp32': 1e-4, 'bf16': 5e-2, 'fp16': 1e-2}


OLD_LLM_PREFIX = 'model.language_model.'  # runs from before the one vocabulary named the LLM so


def load_trained(wrapper, state: dict, checkpoint) -> None:
    state = {('model.llm.' + k[len(OLD_LLM_PREFIX):] if k.startswith(OLD_LLM_PREFIX) else k): v for k, v in state.items()
             if not k.endswith('_extra_state')}  # training state beside the weights (a preference run's delta)
    expected = {k: v for k, v in wrapper.named_parameters() if v.requires_grad}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise CheckpointError(f'{checkpoint}: does not match the recipe ({len(missing)} trained weights missing, '
                              f'{len(unexpected)} unexpected, e.g. {key!r}); is it from a different recipe?')
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f'{checkpoint}: shape mismatch for {key!r}: checkpoint {tuple(value.shape)} vs '
                                  f'recipe {tuple(expected[key].shape)}; is it from a different recipe?')
    with torch.no_grad():
        for key, value in state.items():
            expected[key].copy_(value.to(expected[key].dtype))


def merge_lora(model) -> None:
    """Fold every PEFT-wrapped part back into plain modules (weights stay fp32 here)."""
    from peft import PeftModel
    for attr in PARTS:
        part = getattr(model, attr)
        if isinstance(part, PeftModel):
            setattr(model, attr, part.merge_and_unload())


def probe_inputs(model, tokenizer):
    """A fixed image + a two-turn chat prompt, as the model's chat() would send it (no label rule)."""
    from PIL import Image
    processor = model.image_processor
    size = processor.image_size
    image = Image.new('RGB', (size * 2, size), (200, 60, 40))
    image.paste((30, 90, 220), (0, 0, size // 2, size // 2))
    pixels = processor.process(image)
    prompt = model.prompt('What color is it?', [('<image>\nWhat is in the image?', 'A cat.')])
    prompt = model.image_tokens.expand(prompt, [processor.layout(*image.size)])
    return dict(pixel_values=pixels, input_ids=model.template.bind(tokenizer).chat_inputs(tokenizer, prompt)['input_ids'],
                image_flags=torch.ones(pixels.shape[0], dtype=torch.long), image_sizes=torch.tensor([image.size]))


@torch.no_grad()
def probe_logits(model, inputs):
    model.eval()
    return model(**{k: v.to(model.device) if k != 'pixel_values' else v.to(model.device, model.dtype)
                    for k, v in inputs.items()}).logits.float().cpu()


def training_settings(cfg) -> dict:
    """Spec settings that must travel from training to serving (users.md #2): the tiling limit, the EXIF rule."""
    dataset = cfg.train_dataloader.dataset
    processor = {'max_tiles': int(dataset['max_tiles'])} if dataset.get('max_tiles') else {}
    if dataset.get('exif'):
        processor['exif'] = dataset['exif']  # the EXIF rule training used: every serving path applies it
    return {'image_processor': processor} if processor else {}


def convert(recipe, checkpoint, out, dtype='bf16', verify=True, overwrite=False, cfg_options=(), device='cpu',
            layout=None, adapter_only=False):
    """-> dict(out, layout, max_diff, tolerance, passed). Raises CheckpointError / FileExistsError on bad input.
    adapter_only: write the LLM's LoRA as a PEFT adapter folder for the base (formats/adapter.py), unmerged."""
    out, checkpoint = Path(out), Path(checkpoint)
    if out.resolve() == checkpoint.resolve() or checkpoint.resolve() in out.resolve().parents:
        raise FileExistsError(f'{out}: OUT must not be the checkpoint or inside it')
    prepare_output(out, overwrite)
    with tqdm(total=5, desc='convert', unit='step') as steps:  # closed on errors too: clean one-line messages
        return _convert(steps, recipe, checkpoint, out, dtype, verify, cfg_options, device, layout, adapter_only)


def _convert(steps, recipe, checkpoint, out, dtype, verify, cfg_options, device, layout, adapter_only=False):
    from mmengine.registry import MODELS
    cfg = load_recipe(recipe, cfg_options)
    model_cfg = dict(cfg.model, dtype='fp32', quantization=None, gradient_checkpointing=False)
    steps.set_postfix_str('rebuild model from recipe')
    wrapper = MODELS.build(model_cfg).to(device)
    steps.update()
    steps.set_postfix_str('load trained weights')
    load_trained(wrapper, read_trained_weights(checkpoint), checkpoint)
    model, tokenizer = wrapper.model, wrapper.tokenizer
    model.spec = model.spec.override(training_settings(cfg))
    layout = layout_named(layout or cfg.get('save_layout') or natural_layout(model.spec, wrapper.checkpoint)).NAME
    inputs = probe_inputs(model, tokenizer)
    reference = probe_logits(model, inputs) if verify else None
    steps.update()
    if adapter_only:
        layout = layout_of(wrapper.checkpoint)  # the adapter names modules as the base folder does
    else:
        steps.set_postfix_str('merge LoRA (fp32)')
        merge_lora(model)
    steps.update()
    staging = out.parent / f'.{out.name}.convert-{uuid.uuid4().hex[:8]}'
    result = {'out': str(out), 'layout': 'adapter' if adapter_only else layout, 'max_diff': None,
              'tolerance': None, 'passed': True}
    try:
        steps.set_postfix_str('save adapter (fp32)' if adapter_only else f'save {layout} {dtype}')
        if adapter_only:
            write_adapter(model, layout, wrapper.checkpoint, staging)
            dtype = 'fp32'
        else:
            save(model, tokenizer, staging, layout=layout, dtype=dtype, base_folder=wrapper.checkpoint)
        steps.update()
        if verify:
            steps.set_postfix_str('self-check')
            reloaded = (load_adapted(staging) if adapter_only else load(staging, dtype=torch.float32))[0]
            diff = float((probe_logits(reloaded, inputs) - reference).abs().max())
            scale = float(reference.abs().max())
            tolerance = TOLERANCE[dtype] * max(1.0, scale) if dtype != 'fp32' else TOLERANCE['fp32']
            result.update(max_diff=diff, tolerance=tolerance, passed=diff <= tolerance)
        steps.update()
        if not result['passed']:
            raise AssertionError(f'self-check FAIL: max |logit diff| {result["max_diff"]:.3g} > {result["tolerance"]:.3g}')
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
        if not adapter_only:
            result['caveat'] = owner_caveat(layout, model.spec)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return result
