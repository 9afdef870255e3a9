"""TinyLLaVA Factory's label rule (data/templates/tinyllava.py) on tokenizers with and without a BOS: exactly
each answer and its EOS are trained, over several rounds and with an image; the prompt renders as TinyLLaVA's
templates do; a sample whose round arithmetic fails is masked whole."""
import copy

import pytest

from vlmtune.data.rejects import IGNORE_INDEX
from vlmtune.data.templates.tinyllava import tinyllava_template
from vlmtune.tiny.compose import tiny_tokenizer

EOS = '<eos>'
CONVERSATION = [{'from': 'human', 'value': '<image>\nWhat colour is it?'}, {'from': 'gpt', 'value': 'It is red.'},
                {'from': 'human', 'value': 'And the dish?'}, {'from': 'gpt', 'value': 'Noodles with beef.'}]


@pytest.fixture(scope='module', params=['qwen2', 'internlm2'])  # byte-level BPE without BOS; SentencePiece with <s>
def tokenizer(request):
    tok = copy.deepcopy(tiny_tokenizer(request.param, 'vicuna_v1'))  # (the factory's copy is shared)
    tok.add_special_tokens({'additional_special_tokens': [EOS]})
    return tok


def test_answers_and_their_eos_are_all_that_trains(tokenizer):
    template = tinyllava_template('test_tinyllava', EOS)
    messages = template.prepare(CONVERSATION, 1)
    ids, labels, warnings = template.tokenize(tokenizer, messages, image='<image>')
    assert not warnings and len(ids) == len(labels)
    trained = [[t for t, l in zip(ids, labels) if l != IGNORE_INDEX]]
    text = tokenizer.decode(trained[0])
    assert text.replace(' ', '') == ('Itisred.' + EOS + 'Noodleswithbeef.' + EOS), text
    bos = tokenizer.bos_token_id is not None and ids[0] == tokenizer.bos_token_id
    assert labels[0] == IGNORE_INDEX and (not bos or tokenizer('a').input_ids[0] == ids[0])


def test_prompt_and_generation_prompt_render_as_tinyllava(tokenizer):
    template = tinyllava_template('test_tinyllava', EOS)
    rendered = template.render(template.prepare(CONVERSATION[:2], 1))
    assert rendered == (template.system_message + ' USER: <image>\nWhat colour is it? ASSISTANT: It is red.' + EOS)
    assert template.chat_prompt([], 'Why?').endswith(' USER: Why? ASSISTANT:')


def test_a_broken_round_masks_the_sample(tokenizer):
    template = tinyllava_template('test_tinyllava', EOS)
    messages = template.prepare([{'from': 'human', 'value': 'Hi ASSISTANT: there'}, {'from': 'gpt', 'value': 'ok'}], 0)
    ids, labels, warnings = template.tokenize(tokenizer, messages)
    assert all(label == IGNORE_INDEX for label in labels) and 'mismatch' in warnings[0]
