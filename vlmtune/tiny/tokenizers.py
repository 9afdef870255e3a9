"""Tokenizers the tiny models use, trained here on a small built-in corpus (no downloads): a byte-level BPE
saved as a Qwen2 tokenizer (no BOS), a SentencePiece model for InternLM2 (adds <s>), and a Llama-style
SentencePiece model (adds <s>, dummy prefix) for LLaVA's Vicuna. An LLM family's entry says which kind
its tiny model gets (`tiny_tokenizer`); the template says which special tokens its format needs.
"""
from pathlib import Path

from ..data.templates.internvl import CHATML_TOKENS, SYSTEM_MESSAGE_V2, SYSTEM_MESSAGE_V25
from ..data.templates.llava import VICUNA_SYSTEM

CHATML_SPECIALS = list(CHATML_TOKENS)
CORPUS = [SYSTEM_MESSAGE_V2, SYSTEM_MESSAGE_V25,
          'What is in the image? A cat. What color is it? It is red, green, blue, yellow or white.',
          'Describe the picture. The dish in the picture is noodles with beef and rice.',
          'How many circles are there? There are 0 1 2 3 4 5 6 7 8 9 10 shapes: square, triangle, star.',
          'Answer with the option letter directly. (A) (B) (C) (D) A B C D yes no left right top bottom.',
          '图中的菜是什么？请直接回答选项字母。这道菜来自哪个地区？米饭 面条 饺子 包子 火锅 豆腐 鱼 鸡 牛肉',
          'The quick brown fox jumps over the lazy dog. Hello world! 1234567890 ,.;:?!-_()[]{}"\'/\\',
          'user assistant system image question answer the a an is are of in on with and or to']
# `USER` only right after `</s>`: as in Llama-2's vocabulary, `USER` is one piece and `▁USER` two,
# which LLaVA's non-legacy round arithmetic (vicuna_v1) relies on.
LLAVA_CORPUS = CORPUS + [VICUNA_SYSTEM, 'What is in the image? ASSISTANT: A cat.</s>USER: What color is it? '
                         'ASSISTANT: It is red.</s>USER: why ASSISTANT: because</s>USER: what']


def train_bpe_tokenizer(specials, vocab_size, workdir: Path, corpus):
    """Byte-level BPE -> Qwen2TokenizerFast built from vocab.json/merges.txt (so slow files exist)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Qwen2TokenizerFast
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=['<|endoftext|>'],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer)
    tok.model.save(str(workdir))
    fast = Qwen2TokenizerFast(vocab_file=str(workdir / 'vocab.json'), merges_file=str(workdir / 'merges.txt'),
                              unk_token=None, bos_token=None, eos_token=specials[-1], pad_token='<|endoftext|>')
    fast.add_special_tokens({'additional_special_tokens': specials})
    return fast


def train_sentencepiece_tokenizer(specials, vocab_size, workdir: Path, corpus):
    """SentencePiece BPE with byte fallback -> InternLM2Tokenizer (adds <s>)."""
    import sentencepiece as spm
    from ..formats.internvl_remote.tokenization_internlm2 import InternLM2Tokenizer
    model_path = workdir / 'tokenizer.model'
    with open(model_path, 'wb') as handle:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus * 4), model_writer=handle,
                                       vocab_size=vocab_size, model_type='bpe', byte_fallback=True,
                                       character_coverage=1.0, user_defined_symbols=specials,
                                       unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False,
                                       # Keep newlines and spaces verbatim, as chat tokenizers must.
                                       normalization_rule_name='identity', add_dummy_prefix=False,
                                       remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
                                       minloglevel=2)
    tok = InternLM2Tokenizer(vocab_file=str(model_path))
    tok.add_special_tokens({'additional_special_tokens': specials})
    return tok


def train_llama_tokenizer(vocab_size: int, workdir: Path, corpus, legacy: bool = False):
    """A Llama-style SentencePiece BPE (<unk> 0, <s> 1, </s> 2, byte fallback, dummy prefix, split
    digits) as LlamaTokenizerFast; its folder also holds tokenizer.model for LlamaTokenizer."""
    import sentencepiece as spm
    from transformers import LlamaTokenizerFast
    model_path = workdir / 'tokenizer.model'
    with open(model_path, 'wb') as handle:
        spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus * 4), model_writer=handle,
                                       vocab_size=vocab_size, model_type='bpe', byte_fallback=True,
                                       split_digits=True, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2,
                                       pad_id=-1, hard_vocab_limit=False, normalization_rule_name='identity',
                                       add_dummy_prefix=True, remove_extra_whitespaces=False,
                                       allow_whitespace_only_pieces=True, num_threads=1, minloglevel=2)
    return LlamaTokenizerFast(vocab_file=str(model_path), from_slow=True, legacy=legacy, add_bos_token=True,
                              add_eos_token=False, add_prefix_space=True, pad_token=None,
                              clean_up_tokenization_spaces=False,
                              model_max_length=4096)
