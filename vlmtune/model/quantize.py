"""QLoRA base and quantized inference (LLaVA's --load-4bit / --load-8bit): the LLM's Linear layers (not
the output head, not MoE routers) become bitsandbytes 4-bit NF4 or 8-bit layers. GPU only:
bitsandbytes 0.45 has no CPU kernels for them."""
import torch
from torch import nn


def quantizable_linears(llm):
    """(parent, name, Linear) to turn 4-bit: all but the output head and MoE routers (a block's `gate`
    beside its `experts`), whose 4-bit logits would change which experts each token gets."""
    head = llm.get_output_embeddings()
    for parent in list(llm.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and child is not head and not (name == 'gate' and hasattr(parent, 'experts')):
                yield parent, name, child


def _replace_linears(model, quantized) -> int:
    """Each quantizable Linear of the LLM -> quantized(child) (a bitsandbytes layer, on the GPU)."""
    replaced = 0
    for parent, name, child in quantizable_linears(model.llm):
        setattr(parent, name, quantized(child).cuda())
        replaced += 1
    model.cuda()
    return replaced


def quantize_llm_4bit(model, quantization: str = 'nf4') -> int:
    if not torch.cuda.is_available():
        raise RuntimeError('QLoRA (4-bit base) needs a CUDA GPU: bitsandbytes 4-bit has no CPU kernels; '
                           'use llm="lora" without quantization on CPU')
    import bitsandbytes as bnb
    compute_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16

    def quantized(child):
        q = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                              compute_dtype=compute_dtype, quant_type=quantization)
        q.weight = bnb.nn.Params4bit(child.weight.data.to('cpu'), requires_grad=False, quant_type=quantization)
        if child.bias is not None:
            q.bias = nn.Parameter(child.bias.data, requires_grad=False)
        return q
    return _replace_linears(model, quantized)


def quantize_llm_8bit(model) -> int:
    """LLM.int8() inference weights (bitsandbytes Linear8bitLt, outlier threshold 6.0 as LLaVA's loader)."""
    if not torch.cuda.is_available():
        raise RuntimeError('8-bit loading needs a CUDA GPU: bitsandbytes 8-bit has no CPU kernels; load in '
                           'full precision on CPU')
    import bitsandbytes as bnb

    def quantized(child):
        q = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=child.bias is not None,
                                has_fp16_weights=False, threshold=6.0)
        q.weight = bnb.nn.Int8Params(child.weight.data.to('cpu', torch.float16), requires_grad=False,
                                     has_fp16_weights=False)
        if child.bias is not None:
            q.bias = nn.Parameter(child.bias.data.to(torch.float16), requires_grad=False)
        return q
    return _replace_linears(model, quantized)


def quantize_for_inference(model, bits: int) -> int:
    """bits 4 (NF4) or 8; a clear error on CPU."""
    if bits not in (4, 8):
        raise ValueError(f'{bits}-bit loading: choose 4 or 8')
    return quantize_llm_4bit(model) if bits == 4 else quantize_llm_8bit(model)
