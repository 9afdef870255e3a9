"""pipeline(..., backend='torch'): sessions, images in any turn, streaming, reset, thread isolation;
the saved tokenizer chat_template renders exactly the template code's string for every template."""
import threading

import pytest
import torch
from PIL import Image

from vlmtune.data.tiling import tile_image
from vlmtune.formats import CheckpointError
from vlmtune.formats.internvl_remote.conversation import get_conv_template
from vlmtune.formats.tokenizers import load_tokenizer
from vlmtune.serve import GenerationConfig, pipeline

GEN = GenerationConfig(max_new_tokens=5)


@pytest.fixture(scope='module')
def pipe(tiny_folder):
    return pipeline(tiny_folder('internlm2', '300m'), backend='auto')




def test_auto_is_torch_on_cpu_and_lmdeploy_needs_gpu(pipe, tiny_folder):
    assert pipe.backend == 'torch'
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match='needs a GPU'):
            pipeline(tiny_folder('internlm2', '300m'), backend='turbomind')


def test_two_turns_then_new_image_matches_official_chat(pipe):
    red, blue = Image.new('RGB', (112, 56), 'red'), Image.new('RGB', (56, 56), 'blue')
    session = pipe.chat(('What is it?', red), gen_config=GEN)
    first = session.response.text
    session = pipe.chat('What colour?', session=session, gen_config=GEN)
    session = pipe.chat(('And this one?', blue), session=session, gen_config=GEN)
    assert [q for q, _ in session.history] == ['<image>\nWhat is it?', 'What colour?', '<image>\nAnd this one?']
    assert len(session.images) == 2 and session.images[0].shape[0] == 3  # 2x1 grid + thumbnail
    tiles = [tile_image(red, pipe.image_processor.tiling(1)), tile_image(blue, pipe.image_processor.tiling(1))]
    history, answers = [], []
    for question, pixels in [('<image>\nWhat is it?', tiles[:1]), ('What colour?', tiles[:1]),
                             ('<image>\nAnd this one?', tiles)]:
        answers.append(pipe.model.chat(pipe.tokenizer, torch.cat(pixels), question, GEN.to_hf(), history=history,
                                       num_patches_list=[p.shape[0] for p in pixels]))
    assert [a for _, a in session.history] == answers and answers[0] == first


def test_streaming_and_reset(pipe):
    image = Image.new('RGB', (56, 56), 'green')
    reference = pipe.chat(('Describe.', image), gen_config=GEN).response.text
    session = None
    from vlmtune.serve.pipeline import Session
    session = Session()
    pieces = list(pipe.chat(('Describe.', image), session=session, gen_config=GEN, stream=True))
    assert ''.join(pieces).strip() == reference.strip() == session.response.text.strip()
    assert len(session.history) == 1
    session.reset()
    assert session.history == [] and session.images == [] and session.response.text == ''
    again = pipe.chat(('Describe.', image), session=session, gen_config=GEN)
    assert again.response.text == reference


def test_text_only_session_and_infer(pipe):
    session = pipe.chat('Hello there', gen_config=GEN)
    assert session.images == [] and session.history[0][0] == 'Hello there'
    responses = pipe.infer(['Hello there', ('Hi', Image.new('RGB', (56, 56), 'red'))], GEN)
    assert responses[0].text == session.response.text and len(responses) == 2


def test_eight_threaded_sessions_never_share_history(pipe):
    colours = ['red', 'green', 'blue', 'white', 'black', 'yellow', 'purple', 'orange']

    def conversation(i):
        image = Image.new('RGB', (56 + 28 * (i % 3), 56), colours[i])
        return [(f'Question {i}-a?', image), f'Question {i}-b?', f'Question {i}-c?']

    expected = {}
    for i in range(8):  # sequential reference
        session = None
        for prompt in conversation(i):
            session = pipe.chat(prompt, session=session, gen_config=GEN)
        expected[i] = session.history
    results, errors = {}, []

    def worker(i):
        try:
            session = None
            for prompt in conversation(i):
                session = pipe.chat(prompt, session=session, gen_config=GEN)
            results[i] = session.history
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors
    for i in range(8):
        assert results[i] == expected[i]
        assert all(f'Question {i}-' in q for q, _ in results[i])


def test_bad_inputs_are_one_line_errors(pipe, tiny_folder, tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not an image')
    with pytest.raises(ValueError) as exc:
        pipe.chat(('What?', str(bad)), gen_config=GEN)
    assert 'broken.jpg' in str(exc.value) and '\n' not in str(exc.value)
    import shutil
    folder = tmp_path / 'incomplete'
    shutil.copytree(tiny_folder('qwen2', '300m'), folder)
    (folder / 'model.safetensors').unlink()
    with pytest.raises(CheckpointError) as exc:
        pipeline(folder, backend='torch')
    assert 'model.safetensors' in str(exc.value) and '\n' not in str(exc.value)


@pytest.mark.parametrize('template,llm', [('internvl2_5', 'qwen2'), ('Hermes-2', 'qwen2'),
                                          ('internlm2-chat', 'internlm2'), ('phi3-chat', 'phi3')])
def test_chat_template_renders_the_template_exactly(tiny_folder, template, llm):
    tokenizer = load_tokenizer(tiny_folder(llm, '300m', template=template))
    messages = [{'role': 'user', 'content': '<image>\nWhat is in the image?'}, {'role': 'assistant', 'content': 'A cat.'},
                {'role': 'user', 'content': 'What color is it?'}]
    conv = get_conv_template(template)
    for role, content in [(0, messages[0]['content']), (1, 'A cat.'), (0, 'What color is it?'), (1, None)]:
        conv.append_message(conv.roles[role], content)
    assert tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == conv.get_prompt()
    custom = [{'role': 'system', 'content': 'Be brief.'}] + messages
    conv.system_message = 'Be brief.'
    assert tokenizer.apply_chat_template(custom, tokenize=False, add_generation_prompt=True) == conv.get_prompt()


def test_prompts_take_lmdeploy_forms_with_the_image_on_either_side(tmp_path):
    from vlmtune.serve.pipeline import split_prompt
    red = Image.new('RGB', (8, 8), (255, 0, 0))
    red.save(tmp_path / 'red.png')
    for prompt in (('What colour?', red), (red, 'What colour?'), ('What colour?', [red]),
                   ('What colour?', str(tmp_path / 'red.png'))):
        text, images = split_prompt(prompt)
        assert text == 'What colour?' and len(images) == 1 and images[0].getpixel((0, 0)) == (255, 0, 0)
    assert split_prompt('Hello') == ('Hello', [])
    with pytest.raises(ValueError, match='missing.png: cannot read image'):
        split_prompt(('What colour?', str(tmp_path / 'missing.png')))
