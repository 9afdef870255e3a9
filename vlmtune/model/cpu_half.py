"""Half precision on CPU: two kernels PyTorch runs slower in bf16 / fp16 than in fp32 on our CPUs, so
they run in fp32 on the half-precision values and round their result once. A GPU's half-precision
kernels accumulate in fp32 too, so the numbers come closer to a GPU's, not further. On a GPU or in
fp32 nothing changes.

* The towers' patch embedding (a stride = kernel Conv2d): 12 tiles at 448 px, patch 14, width 32 take
  113 ms in bf16 against 14 ms in fp32.
* Attention that will be differentiated (the LLM's during training): SDPA's bf16 backward takes 128 ms
  against 90 ms for the fp32 forward + backward ([2, 4, 3367, 16], causal). Forward-only attention
  (frozen towers, generation) stays in half precision, where the CPU forward is as fast or faster.
"""
import torch
from torch import nn

HALF = (torch.bfloat16, torch.float16)


def runs_in_fp32(tensor: torch.Tensor) -> bool:
    return tensor.device.type == 'cpu' and tensor.dtype in HALF


class PatchConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not runs_in_fp32(self.weight):
            return super().forward(x)
        bias = None if self.bias is None else self.bias.float()
        return self._conv_forward(x.float(), self.weight.float(), bias).to(self.weight.dtype)


def use_patch_conv(module: nn.Module) -> nn.Module:
    """Every plain nn.Conv2d inside `module` becomes a PatchConv2d (in place: same parameters)."""
    for child in module.modules():
        if type(child) is nn.Conv2d:
            child.__class__ = PatchConv2d
    return module


def differentiable_attention(attend, query, key, value, attention_mask=None, **kwargs):
    """attend(query, key, value, attention_mask, **kwargs) -> output or (output, weights), in fp32 when
    the query is a CPU half-precision tensor with a backward to come (output cast back)."""
    if not (runs_in_fp32(query) and query.requires_grad):
        return attend(query, key, value, attention_mask, **kwargs)
    if attention_mask is not None and attention_mask.is_floating_point():
        attention_mask = attention_mask.float()
    out = attend(query.float(), key.float(), value.float(), attention_mask, **kwargs)
    if isinstance(out, tuple):
        return (out[0].to(query.dtype), *out[1:])
    return out.to(query.dtype)
