"""OPT (released BLIP-2: blip2-opt-2.7b / 6.7b): transformers' own class. Learned positions (offset 2), pre-LN
blocks whose projections are `self_attn.{q,k,v,out}_proj`, `fc1` and `fc2` (no `mlp.` level), under
`model.decoder`; ReLU, tied head. Its attention takes no 4-D block mask, so it trains on padded batches only
(packing False). The tokenizer is GPT-2's byte-level BPE with `<s> <pad> </s> <unk>` first and `</s>` as BOS
(added before the text) and EOS. BLIP-2's prompt: `blip2` ('Question: {q} Answer: {a}' and a newline). The
release trains with dropout 0.1 (read from its config)."""
from . import add
from .entry import LLMEntry

OPT_SPECIALS = ['<s>', '<pad>', '</s>', '<unk>']  # ids 0-3, as OPT's vocabulary has them


def tiny_tokenizer(specials, vocab_size, workdir, corpus):
    """OPT's kind: byte-level BPE as GPT2TokenizerFast, `</s>` put first by the post-processor (what
    transformers' GPT-2 converter writes for add_bos_token), pad `<pad>`; the template's specials added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import GPT2TokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus * 4, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=OPT_SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single='</s>:0 $A:0', pair='</s>:0 $A:0 $B:1',
                                                       special_tokens=[('</s>', OPT_SPECIALS.index('</s>'))])
    fast = GPT2TokenizerFast(tokenizer_object=tok, bos_token='</s>', eos_token='</s>', unk_token='</s>',
                             pad_token='<pad>', add_bos_token=True)
    fast.add_special_tokens({'additional_special_tokens': list(specials)})
    return fast


def tiny_config(common: dict, spec) -> dict:
    """OPT-2.7B's structure (MHA, learned positions, ReLU, tied head); dropout off for deterministic tests."""
    kept = {k: v for k, v in common.items()  # (initializer_range stays: transformers' Llava init reads it)
            if k not in ('num_key_value_heads', 'intermediate_size', 'rms_norm_eps', 'rope_theta')}
    return {**kept, 'model_type': 'opt', 'ffn_dim': spec.llm_intermediate, 'word_embed_proj_dim': spec.llm_width,
            'max_position_embeddings': 2048, 'do_layer_norm_before': True, 'activation_function': 'relu',
            'dropout': 0.0, 'attention_dropout': 0.0, 'layerdrop': 0.0, 'enable_bias': True,
            'layer_norm_elementwise_affine': True, 'init_std': 0.02, 'tie_word_embeddings': True}


# engines: none claimed (blip2_hf is not served yet; vLLM's run of a llava_hf OPT folder is not verified, and
# transformers 4.48's Llava cannot run one: it passes cache_position, which 4.48's OPT does not take).
add(LLMEntry('opt', 'OPTForCausalLM', 'OPTConfig', 'OPTForCausalLM', default_template='blip2',
             tiny_config=tiny_config, tiny_tokenizer=tiny_tokenizer, blocks_path='model.decoder.layers',
             embed_key='model.decoder.embed_tokens.weight', packing=False, engines=(),
             lora_targets=('self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj',
                           'fc1', 'fc2')))
