"""The model a recipe trains (mmengine's model): builds the recipe's model — a checkpoint folder of any
layout, which supplies the whole composition, with the recipe's spec settings on top; or, without a
folder, the recipe's parts — applies per-part trainability, computes the loss, stops on a non-finite
loss, and checkpoints only what trains."""
from collections import OrderedDict
from pathlib import Path

import torch
from mmengine.logging import MessageHub, print_log
from mmengine.model import BaseModel

from ..formats import read_spec
from ..model.checkpointing import checkpoint_kwargs
from .model_source import build_model
from ..model.packed_attention import enable_packed_attention
from ..model.vlm import default_attn_implementation
from .trainability import LoraSettings, apply_trainability, renamed_parts, validate_modes

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def resolve_dtype(dtype: str) -> torch.dtype:
    """'auto': bf16 on GPUs that support it, else fp32 (CPU training runs in fp32)."""
    if dtype == 'auto':
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f'dtype {dtype!r} is not one of {["auto", *DTYPES]}')
    return DTYPES[dtype]


class NonFiniteLossError(RuntimeError):
    pass


class TrainingModel(BaseModel):
    def __init__(self, checkpoint: str = None, parts: dict = None, spec: dict = None, vision_tower: str = 'frozen',
                 connector: str = 'full', llm: str = 'lora', lora: dict = None, vision_tower_lora: dict = None,
                 quantization: str = None, dtype: str = 'auto', attn_implementation: str = 'auto',
                 gradient_checkpointing: bool = True, data_preprocessor=None, **old_names):
        """checkpoint: a folder of any supported layout; it supplies the whole composition (tower, connector,
        LLM, processor, template) and `parts` is then not used. parts: without a checkpoint, the part folders
        to build from (vlmtune/engine/model_source.py). spec: settings on top of either (e.g. an MoE upcycle)."""
        super().__init__(data_preprocessor=data_preprocessor)
        renamed_parts(old_names)
        if old_names:
            raise TypeError(f'TrainingModel: unknown settings {sorted(old_names)}')
        validate_modes(vision_tower=vision_tower, connector=connector, llm=llm)
        if checkpoint:
            read_spec(checkpoint)  # one-line error for a bad folder before any weights load
        self.checkpoint = str(Path(checkpoint)) if checkpoint else None
        self.recipe_meta = dict(checkpoint=self.checkpoint, parts=parts, spec=spec, vision_tower=vision_tower,
                                connector=connector, llm=llm, lora=lora, vision_tower_lora=vision_tower_lora,
                                quantization=quantization)
        attn = default_attn_implementation() if attn_implementation == 'auto' else attn_implementation
        self.model, self.tokenizer = build_model(checkpoint, spec, dtype=resolve_dtype(dtype), attn_implementation=attn,
                                                 parts=parts)
        # Packed rows: attention per sample instead of over the dense block mask (same numbers, less work).
        enable_packed_attention(self.model.llm)
        if quantization:
            from ..model.quantize import quantize_llm_4bit
            quantize_llm_4bit(self.model, quantization)
        report = apply_trainability(self.model, vision_tower, connector, llm, LoraSettings(**(lora or {})),
                                    LoraSettings(**vision_tower_lora) if vision_tower_lora else None)
        chosen = resolve_dtype(dtype)
        why = {'auto': ' (dtype auto: bf16 on a GPU that has it, fp32 on CPU)'}.get(dtype, '')
        print_log(f"{report.summary()}\n  weights in {str(chosen).replace('torch.', '')}{why}", logger='current')
        if report.trainable == 0:
            raise ValueError('nothing is trainable: set at least one of vision_tower / connector / llm to lora, full '
                             'or partial:K')
        if gradient_checkpointing:
            self.enable_gradient_checkpointing()
        self.model.train()

    def enable_gradient_checkpointing(self):
        kwargs = checkpoint_kwargs()  # reentrant under ZeRO-3 (model/checkpointing.py)
        self.model.llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if kwargs['use_reentrant']:  # reentrant checkpointing backpropagates only into inputs that require grad
            self.model.llm.enable_input_require_grads()
        tower = self.model.vision_tower
        if hasattr(tower, 'set_gradient_checkpointing'):
            tower.set_gradient_checkpointing(True)

    def data_spec(self, max_length: int = 4096):
        """What the data path needs, from the model's own spec and tokenizer."""
        return self.model.spec.data_spec(self.tokenizer, max_length)

    def trainable_keys(self):
        return {name for name, p in self.named_parameters() if p.requires_grad}

    def state_dict(self, destination=None, prefix='', keep_vars=False):
        """Only trainable weights (LoRA and fully trained parts); the base comes from `checkpoint`."""
        full = super().state_dict(prefix=prefix, keep_vars=keep_vars)
        keep = self.trainable_keys()
        out = destination if destination is not None else OrderedDict()
        for key, value in full.items():
            if key[len(prefix):] in keep:
                out[key] = value
        return out

    def load_state_dict(self, state_dict, strict: bool = False, assign: bool = False):
        missing = self.trainable_keys() - set(state_dict)
        if strict and missing:
            raise KeyError(f'checkpoint lacks trainable weights, e.g. {sorted(missing)[:3]}')
        return super().load_state_dict(state_dict, strict=False)

    def forward(self, data, data_samples=None, mode='loss'):
        if mode != 'loss':
            with torch.no_grad():
                return self.model(**_model_inputs(data))
        outputs = self.model(**_model_inputs(data), return_logits=False)  # the loss is all training reads
        loss = outputs.loss
        if not torch.isfinite(loss):
            step = MessageHub.get_current_instance().get_info('iter', 'unknown')
            raise NonFiniteLossError(
                f'loss is {loss.item()} at step {step}: likely causes are a learning rate too high for this '
                f'model, fp16 overflow (use bf16 or fp32), or a batch whose labels are all -100 (check the '
                f'template with `vlmtune data show`)')
        if outputs.aux_loss is not None:  # logged apart; mmengine sums every '*loss*' term for the step
            return {'lm_loss': outputs.lm_loss, 'moe_aux_loss': loss - outputs.lm_loss}
        return {'loss': loss}


def _model_inputs(data: dict) -> dict:
    keys = ('pixel_values', 'input_ids', 'attention_mask', 'position_ids', 'image_flags', 'image_sizes', 'labels',
            'loss_weight')
    return {k: data[k] for k in keys if k in data}
