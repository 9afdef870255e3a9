"""Prompt templates, training labels and train/serve agreement, checked against the format doc.

This file is an independent oracle for `../shared/docs/internvl-format.md` §6-§8: every expected
prompt below is written out literally from the doc (system messages M2/M25 copied verbatim), and
expected token ids / trained positions are computed by tokenizing those literal strings, never by
calling the library's rendering code.
"""
from functools import lru_cache

import pytest
import torch

from vlmtune.data.sample_encoding import SampleRejected, encode_conversation
from vlmtune.data.templates import render_prompt
from vlmtune.data.image import ImageTokens
from vlmtune.tiny import TinySpec, build_tiny_model

# ---------------------------------------------------------------- literal contract strings (doc §7)

M2 = '你是由上海人工智能实验室联合商汤科技开发的书生多模态大模型，英文名叫InternVL, 是一个有用无害的人工智能助手。'
M25 = '你是书生·万象，英文名是InternVL，是由上海人工智能实验室、清华大学及多家合作单位联合开发的多模态大语言模型。'

TEMPLATES = ['internvl2_5', 'Hermes-2', 'internlm2-chat', 'phi3-chat']
LLMS = ['qwen2', 'internlm2']
IGNORE = -100

# The doc's two-turn example (§7), copied as written (escaped newlines, `*256` shorthand).
DOC_TWO_TURN_EXAMPLE = (r'<|im_start|>system\n{M25}<|im_end|>\n<|im_start|>user\n<img><IMG_CONTEXT>*256</img>\n'
                        r'What is in the image?<|im_end|>\n<|im_start|>assistant\nA cat.<|im_end|>\n<|im_start|>'
                        r'user\nWhat color is it?<|im_end|>\n<|im_start|>assistant\n')

Q1, A1, Q2, A2 = 'What is in the image?', 'A cat.', 'What color is it?', 'Red.'
MQ, MA = 'What is different between the two images?', 'The color.'
TQ, TA = 'Hello world!', 'Hello.'

ONE_TURN = [{'from': 'human', 'value': '<image>\n' + Q1}, {'from': 'gpt', 'value': A1}]
TWO_TURN = ONE_TURN + [{'from': 'human', 'value': Q2}, {'from': 'gpt', 'value': A2}]
MULTI_IMAGE = [{'from': 'human', 'value': 'Image-1: <image>\nImage-2: <image>\n' + MQ}, {'from': 'gpt', 'value': MA}]
TEXT_ONLY = [{'from': 'human', 'value': TQ}, {'from': 'gpt', 'value': TA}]

# Training form: every turn closed with the separator (doc §7 MPT rendering).
EXPECTED = {
    'internvl2_5': {
        'one_turn': (f'<|im_start|>system\n{M25}<|im_end|>\n'
                     '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>\n'
                     '<|im_start|>assistant\nA cat.<|im_end|>\n'),
        'two_turn': (f'<|im_start|>system\n{M25}<|im_end|>\n'
                     '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>\n'
                     '<|im_start|>assistant\nA cat.<|im_end|>\n'
                     '<|im_start|>user\nWhat color is it?<|im_end|>\n'
                     '<|im_start|>assistant\nRed.<|im_end|>\n'),
        'two_turn_gen': (f'<|im_start|>system\n{M25}<|im_end|>\n'
                         '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>\n'
                         '<|im_start|>assistant\nA cat.<|im_end|>\n'
                         '<|im_start|>user\nWhat color is it?<|im_end|>\n'
                         '<|im_start|>assistant\n'),
        'multi_image': (f'<|im_start|>system\n{M25}<|im_end|>\n'
                        '<|im_start|>user\nImage-1: <image>\nImage-2: <image>\n'
                        'What is different between the two images?<|im_end|>\n'
                        '<|im_start|>assistant\nThe color.<|im_end|>\n'),
        'text_only': (f'<|im_start|>system\n{M25}<|im_end|>\n'
                      '<|im_start|>user\nHello world!<|im_end|>\n'
                      '<|im_start|>assistant\nHello.<|im_end|>\n'),
    },
    # Hermes-2 and internlm2-chat render identical strings (doc §7); no `\n` after `<|im_end|>`.
    'InternVL2-chatml': {
        'one_turn': (f'<|im_start|>system\n{M2}<|im_end|>'
                     '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>'
                     '<|im_start|>assistant\nA cat.<|im_end|>'),
        'two_turn': (f'<|im_start|>system\n{M2}<|im_end|>'
                     '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>'
                     '<|im_start|>assistant\nA cat.<|im_end|>'
                     '<|im_start|>user\nWhat color is it?<|im_end|>'
                     '<|im_start|>assistant\nRed.<|im_end|>'),
        'two_turn_gen': (f'<|im_start|>system\n{M2}<|im_end|>'
                         '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>'
                         '<|im_start|>assistant\nA cat.<|im_end|>'
                         '<|im_start|>user\nWhat color is it?<|im_end|>'
                         '<|im_start|>assistant\n'),
        'multi_image': (f'<|im_start|>system\n{M2}<|im_end|>'
                        '<|im_start|>user\nImage-1: <image>\nImage-2: <image>\n'
                        'What is different between the two images?<|im_end|>'
                        '<|im_start|>assistant\nThe color.<|im_end|>'),
        'text_only': (f'<|im_start|>system\n{M2}<|im_end|>'
                      '<|im_start|>user\nHello world!<|im_end|>'
                      '<|im_start|>assistant\nHello.<|im_end|>'),
    },
    'phi3-chat': {
        'one_turn': (f'<|system|>\n{M2}<|end|>'
                     '<|user|>\n<image>\nWhat is in the image?<|end|>'
                     '<|assistant|>\nA cat.<|end|>'),
        'two_turn': (f'<|system|>\n{M2}<|end|>'
                     '<|user|>\n<image>\nWhat is in the image?<|end|>'
                     '<|assistant|>\nA cat.<|end|>'
                     '<|user|>\nWhat color is it?<|end|>'
                     '<|assistant|>\nRed.<|end|>'),
        'two_turn_gen': (f'<|system|>\n{M2}<|end|>'
                         '<|user|>\n<image>\nWhat is in the image?<|end|>'
                         '<|assistant|>\nA cat.<|end|>'
                         '<|user|>\nWhat color is it?<|end|>'
                         '<|assistant|>\n'),
        'multi_image': (f'<|system|>\n{M2}<|end|>'
                        '<|user|>\nImage-1: <image>\nImage-2: <image>\n'
                        'What is different between the two images?<|end|>'
                        '<|assistant|>\nThe color.<|end|>'),
        'text_only': (f'<|system|>\n{M2}<|end|>'
                      '<|user|>\nHello world!<|end|>'
                      '<|assistant|>\nHello.<|end|>'),
    },
}
EXPECTED['Hermes-2'] = EXPECTED['internlm2-chat'] = EXPECTED['InternVL2-chatml']

CONVERSATIONS = {'one_turn': (ONE_TURN, False), 'two_turn': (TWO_TURN, False), 'two_turn_gen': (TWO_TURN[:3], True),
                 'multi_image': (MULTI_IMAGE, False), 'text_only': (TEXT_ONLY, False)}

# Per-template literal pieces of the header / end token (doc §7).
ASSISTANT_HEADER = {'internvl2_5': '<|im_start|>assistant\n', 'Hermes-2': '<|im_start|>assistant\n',
                    'internlm2-chat': '<|im_start|>assistant\n', 'phi3-chat': '<|assistant|>\n'}
END_TOKEN = {'internvl2_5': '<|im_end|>', 'Hermes-2': '<|im_end|>', 'internlm2-chat': '<|im_end|>',
             'phi3-chat': '<|end|>'}


def img_block(n_context: int) -> str:
    return '<img>' + '<IMG_CONTEXT>' * n_context + '</img>'


# ---------------------------------------------------------------- tiny tokenizers / models


@lru_cache(maxsize=None)
def tiny(llm: str, template: str):
    return build_tiny_model(TinySpec(llm=llm, template=template))


def tokenizer_of(llm, template):
    return tiny(llm, template)[1]


def expects_bos(llm: str, template: str) -> bool:
    """Doc §8: one masked BOS at the front for BOS-adding tokenizers (InternLM2), except Hermes-2
    (`preprocess_mpt`: 'no BOS'). The Qwen2-style tokenizer has no BOS at all."""
    return llm == 'internlm2' and template != 'Hermes-2'


def tok_ids(tok, text: str, bos: bool):
    ids = tok(text, add_special_tokens=False).input_ids
    return ([tok.bos_token_id] + ids) if bos else ids


@pytest.mark.parametrize('llm', LLMS)
def test_tiny_tokenizer_bos_as_described(llm):
    tok = tokenizer_of(llm, 'internvl2_5')
    if llm == 'internlm2':
        assert tok.bos_token == '<s>' and tok('a').input_ids[0] == tok.bos_token_id
    else:
        assert tok.bos_token_id is None
        assert tok('a').input_ids == tok('a', add_special_tokens=False).input_ids
    assert tiny(llm, 'internvl2_5')[0].num_image_token == 4


# ---------------------------------------------------------------- 1. prompts


@pytest.mark.parametrize('case', list(CONVERSATIONS))
@pytest.mark.parametrize('template', TEMPLATES)
def test_render_prompt_exact(template, case):
    conversations, generation = CONVERSATIONS[case]
    rendered = render_prompt(template, conversations, add_generation_prompt=generation)
    assert rendered == EXPECTED[template][case]


@pytest.mark.parametrize('template', TEMPLATES)
def test_generation_prompt_ends_with_bare_assistant_role(template):
    rendered = render_prompt(template, TWO_TURN[:3], add_generation_prompt=True)
    assert rendered.endswith(END_TOKEN[template] + ('\n' if template == 'internvl2_5' else '')
                             + ASSISTANT_HEADER[template])
    # training form without the last answer = generation form without the role
    assert render_prompt(template, TWO_TURN[:3]) + ASSISTANT_HEADER[template] == rendered


def doc_example(system=M25, newline_after_end=True):
    text = (DOC_TWO_TURN_EXAMPLE.replace('\\n', '\n').replace('{M25}', system)
            .replace('<IMG_CONTEXT>*256', '<IMG_CONTEXT>' * 256))
    return text if newline_after_end else text.replace('<|im_end|>\n', '<|im_end|>')


def test_two_turn_generation_prompt_matches_doc_example_internvl2_5():
    rendered = render_prompt('internvl2_5', TWO_TURN[:3], add_generation_prompt=True)
    # turn 2 re-sends the turn-1 <image>; expansion applies to the whole prompt (one tile, 256 tokens)
    assert rendered.count('<image>') == 1
    expanded = ImageTokens(256).expand(rendered, [1])
    expected = doc_example()
    assert expected.count('<IMG_CONTEXT>') == 256 and '<image>' not in expected
    assert expanded == expected
    assert expanded.endswith('<|im_start|>assistant\n')


@pytest.mark.parametrize('template', ['Hermes-2', 'internlm2-chat'])
def test_two_turn_generation_prompt_internvl2_is_doc_example_without_newlines(template):
    rendered = render_prompt(template, TWO_TURN[:3], add_generation_prompt=True)
    expanded = ImageTokens(256).expand(rendered, [1])
    assert expanded == doc_example(system=M2, newline_after_end=False)
    assert '<|im_end|>\n' not in expanded


def test_expansion_covers_every_image_in_order():
    """chat(): every <image> of the whole prompt (history included) expands in order, first one first."""
    conversations = [{'from': 'human', 'value': '<image>\n' + Q1}, {'from': 'gpt', 'value': A1},
                     {'from': 'human', 'value': '<image>\n' + Q2}]
    rendered = render_prompt('internvl2_5', conversations, add_generation_prompt=True)
    expanded = ImageTokens(4).expand(rendered, [1, 2])
    assert expanded == (f'<|im_start|>system\n{M25}<|im_end|>\n'
                        f'<|im_start|>user\n{img_block(4)}\nWhat is in the image?<|im_end|>\n'
                        '<|im_start|>assistant\nA cat.<|im_end|>\n'
                        f'<|im_start|>user\n{img_block(8)}\nWhat color is it?<|im_end|>\n'
                        '<|im_start|>assistant\n')


@pytest.mark.parametrize('case', list(CONVERSATIONS))
def test_hermes2_and_internlm2_chat_render_identical(case):
    conversations, generation = CONVERSATIONS[case]
    assert (render_prompt('Hermes-2', conversations, add_generation_prompt=generation)
            == render_prompt('internlm2-chat', conversations, add_generation_prompt=generation))


@pytest.mark.parametrize('template', ['Hermes-2', 'internlm2-chat', 'phi3-chat'])
def test_internvl2_templates_have_no_newline_after_end(template):
    for conversations, generation in CONVERSATIONS.values():
        rendered = render_prompt(template, conversations, add_generation_prompt=generation)
        assert END_TOKEN[template] + '\n' not in rendered


def test_internvl2_5_has_newline_after_every_end():
    rendered = render_prompt('internvl2_5', TWO_TURN)
    assert rendered.count('<|im_end|>') == 5 and rendered.count('<|im_end|>\n') == 5


SYSTEM_OVERRIDE = 'You are a helpful assistant.'
EXPECTED_WITH_SYSTEM = {
    'internvl2_5': ('<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
                    '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>\n'
                    '<|im_start|>assistant\nA cat.<|im_end|>\n'),
    'Hermes-2': ('<|im_start|>system\nYou are a helpful assistant.<|im_end|>'
                 '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>'
                 '<|im_start|>assistant\nA cat.<|im_end|>'),
    'internlm2-chat': ('<|im_start|>system\nYou are a helpful assistant.<|im_end|>'
                       '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>'
                       '<|im_start|>assistant\nA cat.<|im_end|>'),
    'phi3-chat': ('<|system|>\nYou are a helpful assistant.<|end|>'
                  '<|user|>\n<image>\nWhat is in the image?<|end|>'
                  '<|assistant|>\nA cat.<|end|>'),
}


@pytest.mark.parametrize('template', TEMPLATES)
def test_leading_system_message_replaces_default(template):
    conversations = [{'from': 'system', 'value': SYSTEM_OVERRIDE}] + ONE_TURN
    rendered = render_prompt(template, conversations)
    assert rendered == EXPECTED_WITH_SYSTEM[template]
    assert M2 not in rendered and M25 not in rendered
    # the system_message argument does the same
    assert render_prompt(template, ONE_TURN, system_message=SYSTEM_OVERRIDE) == EXPECTED_WITH_SYSTEM[template]


PADDED = [{'from': 'human', 'value': ' \n<image>\nWhat is in the image?  \n'}, {'from': 'gpt', 'value': '  A cat. \n'}]


def test_internlm2_chat_strips_values():
    assert render_prompt('internlm2-chat', PADDED) == (
        f'<|im_start|>system\n{M2}<|im_end|>'
        '<|im_start|>user\n<image>\nWhat is in the image?<|im_end|>'
        '<|im_start|>assistant\nA cat.<|im_end|>')


def test_only_internlm2_chat_strips_values():
    assert render_prompt('internvl2_5', PADDED) == (
        f'<|im_start|>system\n{M25}<|im_end|>\n'
        '<|im_start|>user\n \n<image>\nWhat is in the image?  \n<|im_end|>\n'
        '<|im_start|>assistant\n  A cat. \n<|im_end|>\n')
    assert render_prompt('Hermes-2', PADDED) == (
        f'<|im_start|>system\n{M2}<|im_end|>'
        '<|im_start|>user\n \n<image>\nWhat is in the image?  \n<|im_end|>'
        '<|im_start|>assistant\n  A cat. \n<|im_end|>')
    assert render_prompt('phi3-chat', PADDED) == (
        f'<|system|>\n{M2}<|end|>'
        '<|user|>\n \n<image>\nWhat is in the image?  \n<|end|>'
        '<|assistant|>\n  A cat. \n<|end|>')


# ---------------------------------------------------------------- 2. labels


def two_turn_pieces(template: str, image: str):
    """Literal training sequence of TWO_TURN as (text, trained) pieces, doc §7/§8."""
    if template == 'internvl2_5':
        return [(f'<|im_start|>system\n{M25}<|im_end|>\n', False),
                (f'<|im_start|>user\n{image}\nWhat is in the image?<|im_end|>\n', False),
                ('<|im_start|>assistant\n', False), ('A cat.<|im_end|>', True), ('\n', False),
                ('<|im_start|>user\nWhat color is it?<|im_end|>\n', False),
                ('<|im_start|>assistant\n', False), ('Red.<|im_end|>', True), ('\n', False)]
    if template in ('Hermes-2', 'internlm2-chat'):
        return [(f'<|im_start|>system\n{M2}<|im_end|>', False),
                (f'<|im_start|>user\n{image}\nWhat is in the image?<|im_end|>', False),
                ('<|im_start|>assistant\n', False), ('A cat.<|im_end|>', True),
                ('<|im_start|>user\nWhat color is it?<|im_end|>', False),
                ('<|im_start|>assistant\n', False), ('Red.<|im_end|>', True)]
    assert template == 'phi3-chat'
    return [(f'<|system|>\n{M2}<|end|>', False),
            (f'<|user|>\n{image}\nWhat is in the image?<|end|>', False),
            ('<|assistant|>\n', False), ('A cat.<|end|>', True),
            ('<|user|>\nWhat color is it?<|end|>', False),
            ('<|assistant|>\n', False), ('Red.<|end|>', True)]


def expected_encoding(tok, pieces, bos):
    """(ids of the whole text, trained positions, piece boundaries) from literal pieces, computed by
    tokenizing growing prefixes of the literal text."""
    text, trained, bounds = '', set(), [0 if not bos else 1]
    for piece, is_trained in pieces:
        start = len(tok_ids(tok, text, bos))
        text += piece
        end = len(tok_ids(tok, text, bos))
        bounds.append(end)
        if is_trained:
            trained.update(range(start, end))
    whole = tok_ids(tok, text, bos)
    # oracle sanity: every prefix tokenizes to a prefix of the whole
    prefix = ''
    for piece, _ in pieces:
        prefix += piece
        ids = tok_ids(tok, prefix, bos)
        assert whole[:len(ids)] == ids
    return whole, trained, bounds


@pytest.mark.parametrize('llm', LLMS)
@pytest.mark.parametrize('template', TEMPLATES)
def test_two_turn_labels(llm, template):
    model, tok = tiny(llm, template)
    n = model.num_image_token
    assert n == 4
    enc = encode_conversation(tok, template, TWO_TURN, [2], model.image_tokens)
    ids, labels = enc.input_ids, enc.labels
    assert len(ids) == len(labels)
    assert enc.warnings == []
    bos = expects_bos(llm, template)

    # decoded trained tokens: exactly the answers + end token of each turn
    end = END_TOKEN[template]
    assert tok.decode([i for i, l in zip(ids, labels) if l != IGNORE]) == f'A cat.{end}Red.{end}'

    # input_ids == tokenizing the whole rendered prompt at once, image expanded (+BOS when added)
    pieces = two_turn_pieces(template, img_block(n * 2))
    whole, trained, bounds = expected_encoding(tok, pieces, bos)
    assert ids == whole
    full_text = ''.join(p for p, _ in pieces)
    chat_style = tok(full_text).input_ids  # what chat() would feed: the tokenizer's own specials
    assert ids == (chat_style if bos or llm == 'qwen2' else chat_style[1:])

    # trained positions exactly the answer + end-token positions; labels there equal the ids
    assert {i for i, l in enumerate(labels) if l != IGNORE} == trained
    assert all(labels[i] == ids[i] for i in trained)
    assert len(trained) == len(tok(f'A cat.{end}', add_special_tokens=False).input_ids) + \
        len(tok(f'Red.{end}', add_special_tokens=False).input_ids)
    # each masked piece (system, user turns with image, headers, '\n') is fully -100
    for (piece, is_trained), lo, hi in zip(pieces, bounds[:-1], bounds[1:]):
        assert hi > lo, piece
        assert all((labels[i] != IGNORE) == is_trained for i in range(lo, hi)), piece

    # BOS
    if llm == 'internlm2':
        if bos:
            assert ids[0] == tok.bos_token_id and labels[0] == IGNORE
            assert ids.count(tok.bos_token_id) == 1
        else:  # Hermes-2 (preprocess_mpt): no BOS
            assert tok.bos_token_id not in ids
    else:
        assert tok.bos_token_id is None
        assert ids[0] == tok.convert_tokens_to_ids('<|im_start|>' if template != 'phi3-chat' else '<|system|>')

    # end tokens trained; for internvl2_5 the '\n' right after each <|im_end|> is masked
    end_id = tok.convert_tokens_to_ids(end)
    end_positions = [i for i, t in enumerate(ids) if t == end_id]
    trained_ends = [i for i in end_positions if labels[i] != IGNORE]
    assert len(trained_ends) == 2
    if template == 'internvl2_5':
        newline = tok('\n', add_special_tokens=False).input_ids
        assert len(newline) == 1
        for i in end_positions:
            assert ids[i + 1] == newline[0] and labels[i + 1] == IGNORE
    # assistant headers masked
    header = tok(ASSISTANT_HEADER[template], add_special_tokens=False).input_ids
    header_starts = [i for i in range(len(ids)) if ids[i:i + len(header)] == header]
    assert len(header_starts) == 2
    for s in header_starts:
        assert all(labels[i] == IGNORE for i in range(s, s + len(header)))

    # image tokens: num_image_token x tiles, contiguous between <img> and </img>, all masked
    ctx = tok.convert_tokens_to_ids('<IMG_CONTEXT>')
    ctx_positions = [i for i, t in enumerate(ids) if t == ctx]
    assert len(ctx_positions) == n * 2 == enc.image_tokens
    first, last = ctx_positions[0], ctx_positions[-1]
    assert ctx_positions == list(range(first, last + 1))
    assert ids[first - 1] == tok.convert_tokens_to_ids('<img>')
    assert ids[last + 1] == tok.convert_tokens_to_ids('</img>')
    assert ids.count(tok.convert_tokens_to_ids('<img>')) == 1
    assert ids.count(tok.convert_tokens_to_ids('</img>')) == 1
    assert all(labels[i] == IGNORE for i in range(first - 1, last + 2))


@pytest.mark.parametrize('llm', LLMS)
def test_internlm2_chat_labels_use_stripped_values(llm):
    model, tok = tiny(llm, 'internlm2-chat')
    enc = encode_conversation(tok, 'internlm2-chat', PADDED, [1], model.image_tokens)
    text = (f'<|im_start|>system\n{M2}<|im_end|><|im_start|>user\n{img_block(4)}\nWhat is in the image?<|im_end|>'
            '<|im_start|>assistant\nA cat.<|im_end|>')
    assert enc.input_ids == tok_ids(tok, text, expects_bos(llm, 'internlm2-chat'))
    assert tok.decode([i for i, l in zip(enc.input_ids, enc.labels) if l != IGNORE]) == 'A cat.<|im_end|>'


@pytest.mark.parametrize('llm', LLMS)
@pytest.mark.parametrize('template', TEMPLATES)
def test_leading_system_message_in_encoding(llm, template):
    model, tok = tiny(llm, template)
    conversations = [{'from': 'system', 'value': SYSTEM_OVERRIDE}] + ONE_TURN
    enc = encode_conversation(tok, template, conversations, [1], model.image_tokens)
    text = EXPECTED_WITH_SYSTEM[template].replace('<image>', img_block(4))
    assert enc.input_ids == tok_ids(tok, text, expects_bos(llm, template))
    end = END_TOKEN[template]
    assert tok.decode([i for i, l in zip(enc.input_ids, enc.labels) if l != IGNORE]) == f'A cat.{end}'


# ---------------------------------------------------------------- 3. multi-image, text-only, tags


@pytest.mark.parametrize('llm', LLMS)
@pytest.mark.parametrize('template', TEMPLATES)
def test_multi_image_encoding(llm, template):
    model, tok = tiny(llm, template)
    n = model.num_image_token
    enc = encode_conversation(tok, template, MULTI_IMAGE, [1, 2], model.image_tokens)
    text = EXPECTED[template]['multi_image'].replace('<image>', img_block(n * 1), 1).replace('<image>', img_block(n * 2), 1)
    assert enc.input_ids == tok_ids(tok, text, expects_bos(llm, template))
    assert enc.image_tokens == n * 3
    ids = enc.input_ids
    ctx = tok.convert_tokens_to_ids('<IMG_CONTEXT>')
    img_starts = [i for i, t in enumerate(ids) if t == tok.convert_tokens_to_ids('<img>')]
    img_ends = [i for i, t in enumerate(ids) if t == tok.convert_tokens_to_ids('</img>')]
    assert len(img_starts) == len(img_ends) == 2
    # first image (1 tile) first, then the second (2 tiles)
    assert [e - s - 1 for s, e in zip(img_starts, img_ends)] == [n, 2 * n]
    for s, e in zip(img_starts, img_ends):
        assert all(ids[i] == ctx for i in range(s + 1, e))
    assert ids.count(ctx) == 3 * n
    assert all(l == IGNORE for i, l in enumerate(enc.labels) if ids[i] == ctx)
    end = END_TOKEN[template]
    assert tok.decode([i for i, l in zip(ids, enc.labels) if l != IGNORE]) == f'The color.{end}'


@pytest.mark.parametrize('llm', LLMS)
@pytest.mark.parametrize('template', TEMPLATES)
def test_text_only_encoding(llm, template):
    model, tok = tiny(llm, template)
    enc = encode_conversation(tok, template, TEXT_ONLY, [], model.image_tokens)
    assert enc.input_ids == tok_ids(tok, EXPECTED[template]['text_only'], expects_bos(llm, template))
    assert enc.image_tokens == 0
    for token in ('<IMG_CONTEXT>', '<img>', '</img>'):
        assert tok.convert_tokens_to_ids(token) not in enc.input_ids
    end = END_TOKEN[template]
    assert tok.decode([i for i, l in zip(enc.input_ids, enc.labels) if l != IGNORE]) == f'Hello.{end}'


@pytest.mark.parametrize('conversations, tiles', [
    (MULTI_IMAGE, [1]),                       # 2 tags, 1 image
    (MULTI_IMAGE, [1, 1, 1]),                 # 2 tags, 3 images
    (ONE_TURN, [1, 2]),                       # 1 tag, 2 images
    (TEXT_ONLY, [1, 2]),                      # no tags, 2 images: no auto-prepend for multi-image
    (ONE_TURN, []),                           # a tag, no image
    (TWO_TURN[:1] + [{'from': 'gpt', 'value': A1}, {'from': 'human', 'value': '<image>\n' + Q2},
                     {'from': 'gpt', 'value': A2}], [1]),  # 2 tags over two turns, 1 image
])
@pytest.mark.parametrize('llm', LLMS)
def test_tag_image_count_mismatch_rejected(llm, conversations, tiles):
    model, tok = tiny(llm, 'internvl2_5')
    with pytest.raises(SampleRejected):
        encode_conversation(tok, 'internvl2_5', conversations, tiles, model.image_tokens)
    assert issubclass(SampleRejected, ValueError)


@pytest.mark.parametrize('llm', LLMS)
@pytest.mark.parametrize('template', TEMPLATES)
def test_single_image_without_tag_gets_prepended(llm, template):
    model, tok = tiny(llm, template)
    n = model.num_image_token
    untagged = [{'from': 'human', 'value': Q1}, {'from': 'gpt', 'value': A1},
                {'from': 'human', 'value': Q2}, {'from': 'gpt', 'value': A2}]
    original = [dict(m) for m in untagged]
    enc = encode_conversation(tok, template, untagged, [2], model.image_tokens)
    assert untagged == original  # caller's rows untouched
    bos = expects_bos(llm, template)
    tagged = encode_conversation(tok, template, TWO_TURN, [2], model.image_tokens)
    assert enc.input_ids == tagged.input_ids and enc.labels == tagged.labels
    # the first user turn starts with the image block, then '\n', then the question
    pieces = two_turn_pieces(template, img_block(2 * n))
    system = pieces[0][0]
    user_role = '<|user|>\n' if template == 'phi3-chat' else '<|im_start|>user\n'
    start = len(tok_ids(tok, system + user_role, bos))
    ids = enc.input_ids
    assert ids[start] == tok.convert_tokens_to_ids('<img>')
    assert ids[start + 1:start + 1 + 2 * n] == [tok.convert_tokens_to_ids('<IMG_CONTEXT>')] * (2 * n)
    assert ids[start + 1 + 2 * n] == tok.convert_tokens_to_ids('</img>')
    after = tok.decode(ids[start + 2 + 2 * n:start + 2 + 2 * n + 6])
    assert after.startswith('\nWhat'), after
    # only the first human turn got it
    assert ids.count(tok.convert_tokens_to_ids('<img>')) == 1


# ---------------------------------------------------------------- 4. over-length


@pytest.mark.parametrize('llm', LLMS)
@pytest.mark.parametrize('template', TEMPLATES)
def test_over_length_rejected_never_truncated(llm, template):
    model, tok = tiny(llm, template)
    n = model.num_image_token
    full = encode_conversation(tok, template, TWO_TURN, [2], model.image_tokens)
    length = len(full.input_ids)
    limit = length - 1
    with pytest.raises(SampleRejected) as info:
        encode_conversation(tok, template, TWO_TURN, [2], model.image_tokens, max_length=limit)
    message = str(info.value)
    assert str(length) in message and str(limit) in message
    # well below the length (cut would fall inside image tokens) still rejects
    with pytest.raises(SampleRejected):
        encode_conversation(tok, template, TWO_TURN, [2], model.image_tokens, max_length=10)
    for ok in (length, length + 1000):
        enc = encode_conversation(tok, template, TWO_TURN, [2], model.image_tokens, max_length=ok)
        assert enc.input_ids == full.input_ids and enc.labels == full.labels


# ---------------------------------------------------------------- 5. train/serve agreement


class RecordingTokenizer:
    """Delegates to a tokenizer and records every `tokenizer(...)` call."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.calls = []

    def __call__(self, *args, **kwargs):
        out = self._tokenizer(*args, **kwargs)
        self.calls.append((args, kwargs, out))
        return out

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)


def chat_prompt_ids(model, tok, question, history, tiles=2):
    recorder = RecordingTokenizer(tok)
    pixel_values = torch.randn(tiles, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    _, new_history = model.chat(recorder, pixel_values, question, dict(max_new_tokens=1, do_sample=False),
                                history=history, return_history=True)
    assert len(recorder.calls) == 1
    args, _, out = recorder.calls[0]
    return args[0], out['input_ids'][0].tolist(), new_history


@pytest.mark.parametrize('llm', LLMS)
@pytest.mark.parametrize('template', TEMPLATES)
def test_train_serve_agreement(llm, template):
    model, tok = tiny(llm, template)
    n = model.num_image_token
    train_ids = encode_conversation(tok, template, TWO_TURN, [2], model.image_tokens).input_ids
    header = ASSISTANT_HEADER[template]
    header_ids = tok(header, add_special_tokens=False).input_ids
    header_ends = [i + len(header_ids) for i in range(len(train_ids))
                   if train_ids[i:i + len(header_ids)] == header_ids]
    assert len(header_ends) == 2

    # chat() prepends BOS for the InternLM2-style tokenizer (doc §7). Training keeps it except for
    # Hermes-2 (doc §8 preprocess_mpt: no BOS), so there the train ids are chat's without that BOS.
    chat_bos = [tok.bos_token_id] if llm == 'internlm2' else []
    train_bos = [tok.bos_token_id] if expects_bos(llm, template) else []

    # turn 1: chat prepends '<image>\n' itself
    query1, ids1, history = chat_prompt_ids(model, tok, Q1, None)
    gen2 = EXPECTED[template]['two_turn_gen']
    gen1 = gen2[:gen2.index(header) + len(header)]  # the literal prompt up to the first assistant header
    assert query1 == gen1.replace('<image>', img_block(2 * n))
    assert history[0][0] == '<image>\n' + Q1
    assert ids1[:len(chat_bos)] == chat_bos
    assert train_bos + ids1[len(chat_bos):] == train_ids[:header_ends[0]]

    # turn 2: the history re-sends the turn-1 <image>, expanded again
    query2, ids2, _ = chat_prompt_ids(model, tok, Q2, [('<image>\n' + Q1, A1)])
    assert query2 == EXPECTED[template]['two_turn_gen'].replace('<image>', img_block(2 * n))
    assert ids2[:len(chat_bos)] == chat_bos
    assert ids2.count(tok.convert_tokens_to_ids('<IMG_CONTEXT>')) == 2 * n
    assert train_bos + ids2[len(chat_bos):] == train_ids[:header_ends[1]]
