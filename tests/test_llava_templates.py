"""LLaVA templates (seed-systems doc §1 "Templates and masking"): `vicuna_v1` and `plain` with LLaVA's
label rules, `hf_chat_template` on a tokenizer's own chat_template, and `data check` reporting
samples a template's rule masked. Expected prompts are written out from the doc; expected trained
text is the answers themselves, never the library's rendering."""
import json
from collections import Counter

import pytest

from helpers.llava_tokenizers import LLAMA_KINDS, llama_tokenizers, qwen2_tokenizer
from vlmtune.data.check import CheckConfig, check_file
from vlmtune.data.data_spec import DataSpec
from vlmtune.data.image import ImageTokens
from vlmtune.data.rejects import IGNORE_INDEX
from vlmtune.data.sample_encoding import SampleRejected, encode_conversation
from vlmtune.data.show import describe_sample
from vlmtune.data.templates import get_template, llava

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
Q1, A1, Q2, A2 = 'What is in the image?', 'It is a cat.', 'What color is it?', 'The cat is red.'
# The tag where the data put it (after the question); vicuna_v1 moves it to the start of the turn.
TWO_ROUNDS = [{'from': 'human', 'value': Q1 + ' <image>'}, {'from': 'gpt', 'value': A1},
              {'from': 'human', 'value': Q2}, {'from': 'gpt', 'value': A2}]
DOC_TWO_ROUNDS = f'{SYSTEM} USER: <image>\n{Q1} ASSISTANT: {A1}</s>USER: {Q2} ASSISTANT: {A2}</s>'
TEXT_ROUNDS = [{'from': 'human', 'value': Q1}, {'from': 'gpt', 'value': A1},
               {'from': 'human', 'value': Q2}, {'from': 'gpt', 'value': A2}]
CAPTION = [{'from': 'human', 'value': 'Render a clear and concise summary of the photo.\n<image>'},
           {'from': 'gpt', 'value': 'a dog runs on the grass near a tree'}]
TOKENS = ImageTokens(per_tile=3, start='', context='<image>', end='')


@pytest.fixture(scope='module')
def tokenizers(tmp_path_factory):
    folder = tmp_path_factory.mktemp('llava-tokenizers')
    return {**llama_tokenizers(folder), 'qwen2': qwen2_tokenizer(folder)}


def trained_runs(ids, labels):
    """The trained token ids as contiguous runs."""
    runs, current = [], []
    for token, label in zip(ids, labels):
        if label != IGNORE_INDEX:
            assert label == token
            current.append(token)
        elif current:
            runs.append(current)
            current = []
    return runs + ([current] if current else [])


def assert_answers_plus_end(tokenizer, ids, labels, answers, end_id):
    runs = trained_runs(ids, labels)
    assert [run[-1] for run in runs] == [end_id] * len(answers)
    assert [tokenizer.decode(run[:-1]) for run in runs] == answers


# ------------------------------------------------------------------------------ vicuna_v1
def test_vicuna_renders_the_doc_string():
    template = get_template('vicuna_v1')
    messages = template.prepare(TWO_ROUNDS, 1)
    assert messages[0]['value'] == '<image>\n' + Q1
    assert template.render(messages) == DOC_TWO_ROUNDS
    assert template.image_tokens == ('', '<image>', '') and template.added_tokens == ('<image>',)
    assert template.end_token == '</s>'


@pytest.mark.parametrize('kind', LLAMA_KINDS)
def test_vicuna_trains_exactly_the_answers_and_eos(tokenizers, kind):
    tokenizer, template = tokenizers[kind], get_template('vicuna_v1')
    assert tokenizer.legacy is kind.endswith('-legacy')
    ids, labels, warnings = template.tokenize(tokenizer, template.prepare(TWO_ROUNDS, 1))
    assert warnings == [] and ids[0] == tokenizer.bos_token_id and labels[0] == IGNORE_INDEX
    assert ids.count(tokenizer.convert_tokens_to_ids('<image>')) == 1
    assert_answers_plus_end(tokenizer, ids, labels, [A1, A2], tokenizer.eos_token_id)


@pytest.mark.parametrize('kind', LLAMA_KINDS)
def test_vicuna_legacy_rule_is_what_makes_the_rounds_add_up(tokenizers, kind, monkeypatch):
    """The non-legacy -1 after round 1 is needed exactly for non-legacy tokenizers: claiming the other
    mode breaks the arithmetic, and LLaVA's rule then masks the whole sample."""
    tokenizer, template = tokenizers[kind], get_template('vicuna_v1')
    # Only the rule's reading changes (a slow tokenizer would also tokenize differently if flipped).
    monkeypatch.setattr(llava, 'is_legacy', lambda tok: not tok.legacy)
    ids, labels, warnings = template.tokenize(tokenizer, template.prepare(TWO_ROUNDS, 1))
    assert set(labels) == {IGNORE_INDEX}
    assert len(warnings) == 1 and 'tokenization mismatch' in warnings[0]


@pytest.mark.parametrize('kind', ['slow-legacy', 'fast-nonlegacy'])
def test_vicuna_mismatch_masks_the_sample_and_warns(tokenizers, kind):
    """A question holding ' ASSISTANT: ' splits its round in three: LLaVA stops counting there."""
    tokenizer, template = tokenizers[kind], get_template('vicuna_v1')
    rows = [dict(TWO_ROUNDS[0]), *TWO_ROUNDS[1:]]
    rows[2] = {'from': 'human', 'value': 'Then I said ASSISTANT: stop. ' + Q2}
    ids, labels, warnings = template.tokenize(tokenizer, template.prepare(rows, 1))
    assert set(labels) == {IGNORE_INDEX} and 'tokenization mismatch' in warnings[0]
    with pytest.raises(SampleRejected, match='tokenization mismatch') as rejected:
        encode_conversation(tokenizer, template, rows, [1], TOKENS)
    assert rejected.value.kind == 'labels_masked'


def test_vicuna_on_a_tokenizer_without_bos_masks_everything(tokenizers):
    template = get_template('vicuna_v1')
    _, labels, warnings = template.tokenize(tokenizers['qwen2'], template.prepare(TWO_ROUNDS, 1))
    assert set(labels) == {IGNORE_INDEX} and warnings


def test_vicuna_encoding_expands_the_image_and_keeps_the_labels(tokenizers):
    tokenizer, template = tokenizers['fast-legacy'], get_template('vicuna_v1')
    sample = encode_conversation(tokenizer, template, TWO_ROUNDS, [2], TOKENS)
    image_id = tokenizer.convert_tokens_to_ids('<image>')
    assert sample.input_ids.count(image_id) == 6 and sample.image_tokens == 6
    assert all(label == IGNORE_INDEX for token, label in zip(sample.input_ids, sample.labels) if token == image_id)
    assert_answers_plus_end(tokenizer, sample.input_ids, sample.labels, [A1, A2], tokenizer.eos_token_id)


def test_vicuna_chat_template_renders_what_render_gives(tokenizers):
    tokenizer, template = tokenizers['slow-legacy'], get_template('vicuna_v1')
    chat = [{'role': 'user', 'content': '<image>\n' + Q1}, {'role': 'assistant', 'content': A1},
            {'role': 'user', 'content': Q2}, {'role': 'assistant', 'content': A2}]
    jinja = template.chat_template()
    assert tokenizer.apply_chat_template(chat, chat_template=jinja, tokenize=False) == DOC_TWO_ROUNDS
    parts = [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': Q1}]}] + chat[1:3]
    assert tokenizer.apply_chat_template(parts, chat_template=jinja, tokenize=False, add_generation_prompt=True) \
        == template.render(template.prepare(TWO_ROUNDS[:3], 1), add_generation_prompt=True)
    custom = [{'role': 'system', 'content': 'Be brief.'}] + chat[:2]
    assert tokenizer.apply_chat_template(custom, chat_template=jinja, tokenize=False) == \
        template.render([{'from': 'system', 'value': 'Be brief.'}] + template.prepare(TWO_ROUNDS[:2], 1))


def test_vicuna_chat_prompt_ends_with_the_open_assistant_turn():
    template = get_template('vicuna_v1')
    prompt = template.chat_prompt([('<image>\n' + Q1, A1)], Q2)
    assert prompt == f'{SYSTEM} USER: <image>\n{Q1} ASSISTANT: {A1}</s>USER: {Q2} ASSISTANT:'
    assert template.chat_prompt(None, Q1).endswith(' ASSISTANT:')


# ---------------------------------------------------------------------------------- plain
@pytest.mark.parametrize('kind', LLAMA_KINDS + ['qwen2'])
def test_plain_masks_bos_and_image_and_trains_caption_and_newline(tokenizers, kind):
    tokenizer, template = tokenizers[kind], get_template('plain')
    messages = template.prepare(CAPTION, 1)
    assert template.render(messages) == '<image>' + CAPTION[1]['value'] + '\n'
    ids, labels, warnings = template.tokenize(tokenizer, messages)
    image_id = tokenizer.convert_tokens_to_ids('<image>')
    masked = 2 if tokenizer.bos_token_id is not None else 1   # BOS (Llama) and the image placeholder
    assert ids[masked - 1] == image_id and labels[:masked] == [IGNORE_INDEX] * masked
    assert ids[:1] == ([tokenizer.bos_token_id] if masked == 2 else [image_id])
    assert labels[masked:] == ids[masked:] and warnings == []
    assert tokenizer.decode(ids[masked:]) == CAPTION[1]['value'] + '\n'   # no EOS: LLaVA trains none here
    assert tokenizer.eos_token_id not in ids


def test_plain_rejects_what_llava_cannot_train_and_has_a_matching_jinja(tokenizers):
    template = get_template('plain')
    with pytest.raises(SampleRejected, match='one human turn'):
        template.prepare(TEXT_ROUNDS, 1)
    with pytest.raises(SampleRejected, match='exactly one image'):
        template.prepare(CAPTION, 0)
    chat = [{'role': 'user', 'content': 'Describe.'}, {'role': 'assistant', 'content': CAPTION[1]['value']}]
    assert tokenizers['qwen2'].apply_chat_template(chat, chat_template=template.chat_template(), tokenize=False) \
        == template.render(template.prepare(CAPTION, 1))
    assert template.chat_prompt(None, '<image>\nDescribe.') == '<image>'


# ----------------------------------------------------------------------- hf_chat_template
def test_hf_chat_template_needs_a_tokenizer_and_keeps_its_own_jinja(tokenizers):
    template = get_template('hf_chat_template')
    with pytest.raises(ValueError, match='bind it'):
        template.render(TEXT_ROUNDS)
    tokenizer = tokenizers['slow-legacy']
    bound = template.bind(tokenizer)
    assert bound.chat_template() == tokenizer.chat_template and bound.end_token == '</s>'
    assert bound.render(template.prepare(TWO_ROUNDS, 1)) == '<s>' + DOC_TWO_ROUNDS
    assert bound.chat_prompt([('<image>\n' + Q1, A1)], Q2).endswith(f'{A1}</s>USER: {Q2} ASSISTANT:')
    assert [s.text for s in bound.segments(TEXT_ROUNDS) if s.trained] == [A1 + '</s>', A2 + '</s>']


@pytest.mark.parametrize('kind', LLAMA_KINDS)
def test_hf_chat_template_trains_the_answers_and_eos(tokenizers, kind):
    tokenizer, template = tokenizers[kind], get_template('hf_chat_template')
    ids, labels, warnings = template.tokenize(tokenizer, template.prepare(TWO_ROUNDS, 1))
    assert warnings == [] and ids[0] == tokenizer.bos_token_id
    assert_answers_plus_end(tokenizer, ids, labels, [A1, A2], tokenizer.eos_token_id)
    # Same text as vicuna_v1 on text-only rows (LLaVA's piecewise tokenization changes nothing there).
    # Ids differ in one place for non-legacy tokenizers: text after the `<s>` the template writes gets
    # no dummy prefix ('A' rather than vicuna_v1's '▁A'), as apply_chat_template(tokenize=True) gives.
    (ids, labels, _), (v_ids, v_labels, _) = (t.tokenize(tokenizer, TEXT_ROUNDS) for t in (template, get_template('vicuna_v1')))
    differ = [i for i, (a, b) in enumerate(zip(ids, v_ids)) if a != b]
    assert len(ids) == len(v_ids) and differ == ([] if tokenizer.legacy else [1]) and labels == v_labels


def test_hf_chat_template_on_chatml_trains_answers_and_im_end_not_the_newline(tokenizers):
    tokenizer, template = tokenizers['qwen2'], get_template('hf_chat_template')
    rows = [{'from': 'system', 'value': 'Be brief.'}] + TWO_ROUNDS
    ids, labels, warnings = template.tokenize(tokenizer, template.prepare(rows, 1))
    assert warnings == [] and tokenizer.decode(ids).startswith('<|im_start|>system\nBe brief.<|im_end|>\n')
    assert_answers_plus_end(tokenizer, ids, labels, [A1, A2], tokenizer.convert_tokens_to_ids('<|im_end|>'))
    assert tokenizer.decode(ids[-1:]) == '\n' and labels[-1] == IGNORE_INDEX


def test_hf_chat_template_masks_when_prefixes_do_not_render_as_prefixes(tokenizers):
    tokenizer = tokenizers['qwen2']
    unstable = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}"
                "{% if not add_generation_prompt %}{{ 'END' }}{% endif %}")
    template = get_template('hf_chat_template')
    original = tokenizer.chat_template
    try:
        tokenizer.chat_template = unstable
        ids, labels, warnings = template.tokenize(tokenizer, TEXT_ROUNDS)
    finally:
        tokenizer.chat_template = original
    assert set(labels) == {IGNORE_INDEX} and 'prefix' in warnings[0]


# ----------------------------------------------------------------------------- data check
def test_data_check_reports_samples_the_template_masked(tokenizers, tmp_path):
    good = {'id': 'good', 'conversations': TEXT_ROUNDS}
    masked = {'id': 'masked', 'conversations': [TEXT_ROUNDS[0], TEXT_ROUNDS[1], {
        'from': 'human', 'value': 'Then I said ASSISTANT: stop. ' + Q2}, TEXT_ROUNDS[3]]}
    path = tmp_path / 'rows.jsonl'
    path.write_text(''.join(json.dumps(row) + '\n' for row in (good, masked)), encoding='utf-8')
    spec = DataSpec(tokenizers['fast-nonlegacy'], get_template('vicuna_v1'), None, TOKENS, max_length=512)
    report = check_file(path, tmp_path, CheckConfig(max_length=512), token_length_fn=spec.length_fn(tmp_path, 512),
                        progress=False)
    assert (report.kept, report.rejected) == (1, 1) and report.reasons == Counter({'labels_masked': 1})
    record = json.loads((tmp_path / 'rows.rejects.jsonl').read_text().splitlines()[0])
    assert record['id'] == 'masked' and 'tokenization mismatch' in record['reason']
    assert 'labels_masked' in report.summary()


def test_data_spec_binds_hf_chat_template_to_its_tokenizer(tokenizers, tmp_path):
    spec = DataSpec(tokenizers['qwen2'], 'hf_chat_template', None, TOKENS, max_length=512)
    assert spec.template.tokenizer is tokenizers['qwen2']
    llama = DataSpec(tokenizers['slow-legacy'], 'hf_chat_template', None, TOKENS)
    path = tmp_path / 'rows.jsonl'
    path.write_text(json.dumps({'id': 'a', 'conversations': TEXT_ROUNDS}) + '\n', encoding='utf-8')
    shown = describe_sample(path, tmp_path, llama)   # `data show`: the template writes the one BOS
    assert shown['prompt'].startswith('<s>' + SYSTEM) and shown['trained_spans'][0].strip() == A1 + '</s>'
    assert spec.length_fn(tmp_path, 512)({'id': 'a', 'conversations': TEXT_ROUNDS}) > 0
    with pytest.raises(SampleRejected) as too_long:
        spec.length_fn(tmp_path, 8)({'id': 'a', 'conversations': TEXT_ROUNDS})
    assert too_long.value.kind == 'too_long'
