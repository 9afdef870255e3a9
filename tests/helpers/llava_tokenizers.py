"""Tiny tokenizers shaped like LLaVA's LLMs, trained here (no downloads).

Llama/Vicuna: a SentencePiece BPE model with Llama-2's settings (byte fallback, dummy prefix, identity
normalisation, split digits) wrapped as `LlamaTokenizer` (slow) with `legacy=True` and `legacy=False`,
and `LlamaTokenizerFast` converted from each slow one; `<image>` is added as a special token. The
corpus has `USER` only right after `</s>`, so, as in Llama-2's vocabulary, `USER` is one piece and
`▁USER` is two: that is what makes non-legacy tokenizers one token shorter per round after the first
in LLaVA's arithmetic. Qwen2: the package's byte-level BPE (no BOS).
"""
from pathlib import Path

from transformers import AddedToken, LlamaTokenizer, LlamaTokenizerFast

from vlmtune.data.templates.llava import VICUNA_SYSTEM
from vlmtune.tiny import CHATML_SPECIALS, train_bpe_tokenizer

CORPUS = [VICUNA_SYSTEM, 'What is in the image? It is a cat. What color is it? The cat is red.',
          'Describe the picture in detail. A dog runs on the grass near a tree.',
          'The quick brown fox jumps over the lazy dog. Hello world! 1234567890 ,.;:?!-_()[]{}"\'/\\',
          'hello ASSISTANT: hi there</s>USER: why ASSISTANT: because</s>USER: what']
LLAMA_KINDS = ['slow-legacy', 'fast-legacy', 'slow-nonlegacy', 'fast-nonlegacy']

VICUNA_CHAT_TEMPLATE = (  # llava-hf-like Vicuna prompt, as a tokenizer chat_template (BOS written by it)
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] + ' ' }}"
    "{% set loop_messages = messages[1:] %}{% else %}{{ '" + VICUNA_SYSTEM.replace("'", "\\'") + " ' }}"
    "{% set loop_messages = messages %}{% endif %}{% for message in loop_messages %}"
    "{% if message['role'] == 'user' %}{{ 'USER: ' + message['content'] + ' ' }}"
    "{% else %}{{ 'ASSISTANT: ' + message['content'] + eos_token }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}")
CHATML_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + "
    "'<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")


def _train_sentencepiece(path: Path) -> Path:
    import sentencepiece as spm
    with open(path, 'wb') as handle:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(CORPUS * 8), model_writer=handle, vocab_size=600, model_type='bpe',
            byte_fallback=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
            hard_vocab_limit=False, normalization_rule_name='identity', add_dummy_prefix=True,
            remove_extra_whitespaces=False, split_digits=True, minloglevel=2)
    return path


def llama_tokenizers(folder: Path) -> dict:
    """{kind: tokenizer} for LLAMA_KINDS, each with `<image>` and the Vicuna chat_template."""
    model = _train_sentencepiece(Path(folder) / 'tokenizer.model')
    tokenizers = {}
    for legacy, name in ((True, 'legacy'), (False, 'nonlegacy')):
        slow = LlamaTokenizer(str(model), legacy=legacy)
        slow.add_tokens([AddedToken('<image>', special=True, normalized=False)], special_tokens=True)
        slow.chat_template = VICUNA_CHAT_TEMPLATE
        saved = Path(folder) / name
        slow.save_pretrained(str(saved))
        fast = LlamaTokenizerFast.from_pretrained(str(saved), legacy=legacy, from_slow=True)
        assert fast.convert_tokens_to_ids('<image>') == slow.convert_tokens_to_ids('<image>')
        tokenizers[f'slow-{name}'], tokenizers[f'fast-{name}'] = slow, fast
    return tokenizers


def qwen2_tokenizer(folder: Path):
    tokenizer = train_bpe_tokenizer(CHATML_SPECIALS, 400, Path(folder), CORPUS)
    tokenizer.add_tokens(['<image>'], special_tokens=True)
    tokenizer.chat_template = CHATML_CHAT_TEMPLATE
    return tokenizer
