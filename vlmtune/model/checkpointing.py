"""Activation checkpointing for the LLM's and the towers' layers: torch's non-reentrant variant, except
where DeepSpeed ZeRO-3 partitions the parameters.

Under ZeRO-3 a parameter's storage is released (`param.data = torch.empty(0)`) once its module's
forward returns. Non-reentrant checkpointing keeps a frozen parameter (requires_grad=False) that an op
saves as the tensor itself, not a detached copy (torch/utils/checkpoint.py `_recomputation_hook`), and
right after the recompute checks its shape against the forward's: ZeRO-3 has released it by then and the
check fails, "saved {'shape': [64]} recomputed {'shape': [0]}" (DeepSpeed issue #4332, fixed upstream
after the pinned 0.16). Frozen parameters sit in the checkpointed layers of every LoRA, partial:K or
frozen part that gradients pass through. Reentrant checkpointing recomputes into a graph of its own and
runs its backward at once, under ZeRO-3's usual gather/release hooks (transformers' default, which XTuner
uses); it backpropagates only into inputs that require grad, so the layer input is made to require it."""
import torch
import torch.utils.checkpoint


def zero3_enabled() -> bool:
    """True while a DeepSpeed ZeRO-3 config is live (xtuner's DeepSpeedStrategy holds one from before it
    builds the model until training ends)."""
    try:
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
    except ImportError:
        return False
    return is_deepspeed_zero3_enabled()


def checkpoint_kwargs() -> dict:
    """gradient_checkpointing_kwargs for a transformers LLM."""
    return {'use_reentrant': zero3_enabled()}


def checkpoint(function, hidden: torch.Tensor, *args):
    """function(hidden, *args) with its activations recomputed in backward."""
    if not zero3_enabled():
        return torch.utils.checkpoint.checkpoint(function, hidden, *args, use_reentrant=False)
    if torch.is_grad_enabled() and not hidden.requires_grad:  # e.g. a frozen patch embedding below LoRA blocks
        hidden = hidden.detach().requires_grad_()
    return torch.utils.checkpoint.checkpoint(function, hidden, *args, use_reentrant=True)
