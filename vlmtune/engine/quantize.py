"""QLoRA base: the LLM's Linear layers (not the output head) become bitsandbytes 4-bit NF4 layers.
GPU only: bitsandbytes 0.45 has no CPU kernels for 4-bit."""
import torch
from torch import nn


def quantize_llm_4bit(model, quantization: str = 'nf4') -> int:
    if not torch.cuda.is_available():
        raise RuntimeError('QLoRA (4-bit base) needs a CUDA GPU: bitsandbytes 4-bit has no CPU kernels; '
                           'use llm="lora" without quantization on CPU')
    import bitsandbytes as bnb
    compute_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    head = model.language_model.get_output_embeddings()
    replaced = 0
    for parent in list(model.language_model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and child is not head:
                q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                      compute_dtype=compute_dtype, quant_type=quantization)
                q.weight = bnb.nn.Params4bit(child.weight.data.to('cpu'), requires_grad=False,
                                             quant_type=quantization)
                if child.bias is not None:
                    q.bias = nn.Parameter(child.bias.data, requires_grad=False)
                setattr(parent, name, q.cuda())
                replaced += 1
    model.cuda()
    return replaced
