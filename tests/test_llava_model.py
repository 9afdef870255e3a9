"""The LLaVA family through the package model: tiny llava-hf / llava-next-hf folders built with
transformers' own classes load into the package with transformers' logits and greedy generations;
saved back through the package, transformers loads them with no missing / unexpected keys and the
same logits; the spec counts image tokens as transformers' processors do; `chat()` tokenizes a
vicuna_v1 prompt as training does."""
import pytest
import torch
from transformers import AutoProcessor

from helpers.llava_tiny import NAMES, image, messages
from vlmtune.data.image import ImageLayout
from vlmtune.formats import layout_of, load, save
from vlmtune.engine.model_source import build_model
from vlmtune.tiny import TinyLlavaSpec, make_tiny_llava_parts

SIZES = [(100, 50), (50, 100), (56, 56)]


def processor_inputs(folder, picture):
    processor = AutoProcessor.from_pretrained(str(folder))
    prompt = processor.apply_chat_template(messages(), add_generation_prompt=True)
    return processor(images=picture, text=prompt, return_tensors='pt')


def package_inputs(model, inputs, picture):
    return dict(pixel_values=model.image_processor.process(picture), input_ids=inputs['input_ids'],
                attention_mask=inputs['attention_mask'], image_sizes=torch.tensor([picture.size]))


@pytest.mark.parametrize('name', NAMES)
def test_hub_folder_loads_with_transformers_logits_and_generation(llava_hubs, name, tmp_path):
    adapter, folder, model_class, _ = llava_hubs[name]
    reference = model_class.from_pretrained(str(folder)).eval()
    model, _ = load(folder)
    assert layout_of(folder) == adapter.NAME
    for size in SIZES:
        picture = image(*size)
        inputs = processor_inputs(folder, picture)
        ours = package_inputs(model, inputs, picture)
        assert torch.equal(ours['pixel_values'], inputs['pixel_values'].reshape(ours['pixel_values'].shape))
        context = int((inputs['input_ids'] == reference.config.image_token_index).sum())
        assert context == model.image_tokens.count(model.image_processor.layout(*size))  # one source, same count
        with torch.no_grad():
            expected = reference(**inputs).logits
            logits = model(**ours).logits
        torch.testing.assert_close(logits, expected, atol=1e-4, rtol=0)
    greedy = reference.generate(**inputs, max_new_tokens=5, do_sample=False)[:, inputs['input_ids'].shape[1]:]
    mine = model.generate(**{k: v for k, v in ours.items()}, max_new_tokens=5, do_sample=False)
    assert mine.tolist() == greedy.tolist()

    out = save(model, load(folder)[1], tmp_path / 'saved', dtype='fp32')  # natural layout: the folder's own
    assert layout_of(out) == adapter.NAME
    again, info = model_class.from_pretrained(str(out), output_loading_info=True)
    assert not info['missing_keys'] and not info['unexpected_keys'], info
    picture = image(*SIZES[0])
    inputs = processor_inputs(out, picture)
    with torch.no_grad():
        torch.testing.assert_close(again.eval()(**inputs).logits, model(**package_inputs(model, inputs, picture)).logits,
                                   atol=1e-4, rtol=0)


def test_vicuna_chat_prompt_is_tokenized_as_training_does(tmp_path):
    """Training tokenizes LLaVA prompts piece by piece around each image (non-legacy Llama tokenizers
    then put a `▁` after `<image>`); chat() must feed the model the same ids."""
    parts = make_tiny_llava_parts(tmp_path, spec=TinyLlavaSpec(image_size=56))
    model, tokenizer = build_model(spec=dict(
        vision_tower=dict(type='clip', pretrained=str(parts['vision_tower'])), connector=dict(type='mlp2x_gelu'),
        llm=dict(type='llama', pretrained=str(parts['llm'])), image_processor=dict(type='pad', image_size=56),
        template=dict(type='vicuna_v1')))
    assert getattr(tokenizer, 'legacy', True) is False
    spec = model.spec.data_spec(tokenizer)
    row = {'conversations': [{'from': 'human', 'value': '<image>\nWhat colour is it?'}, {'from': 'gpt', 'value': 'red'}]}
    train_ids = spec.encode(row, [ImageLayout(tiles=1)]).input_ids
    prompt = model.image_tokens.expand(model.prompt('<image>\nWhat colour is it?'), [1])
    chat_ids = model.template.chat_inputs(tokenizer, prompt)['input_ids'][0].tolist()
    assert train_ids[:len(chat_ids)] == chat_ids  # the prompt is the training sequence's prefix
    assert tokenizer.decode(train_ids[len(chat_ids):], skip_special_tokens=True).strip() == 'red'


def test_lcs558k_captions_through_datasets_proc_and_plain(tmp_path):
    """LCS-558K's shape (one human prompt with <image>, the caption as the answer) converts with
    `datasets_proc llava` and trains only the caption + newline under `plain`."""
    import json
    import subprocess
    import sys
    from PIL import Image
    (tmp_path / 'images').mkdir()
    Image.new('RGB', (80, 60), 'green').save(tmp_path / 'images' / '00001.jpg')
    records = [{'id': '004539375', 'image': '00001.jpg', 'conversations': [
        {'from': 'human', 'value': 'Render a clear and concise summary of the photo.\n<image>'},
        {'from': 'gpt', 'value': 'a green picture of a cat'}]}]
    (tmp_path / 'blip_laion_cc_sbu_558k.json').write_text(json.dumps(records))
    result = subprocess.run([sys.executable, '-m', 'datasets_proc', 'llava', str(tmp_path / 'blip_laion_cc_sbu_558k.json'),
                             '--image-root', str(tmp_path / 'images'), '-o', str(tmp_path / 'captions.jsonl')],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    row = json.loads((tmp_path / 'captions.jsonl').read_text().splitlines()[0])
    parts = make_tiny_llava_parts(tmp_path / 'parts', spec=TinyLlavaSpec(image_size=56))
    model, tokenizer = build_model(spec=dict(
        vision_tower=dict(type='clip', pretrained=str(parts['vision_tower'])), connector=dict(type='mlp2x_gelu'),
        llm=dict(type='llama', pretrained=str(parts['llm'])), image_processor=dict(type='square', image_size=56),
        template=dict(type='plain')))
    spec = model.spec.data_spec(tokenizer)
    encoded = spec.encode(row, spec.image_layouts(row, tmp_path / 'images'))
    trained = [i for i, label in zip(encoded.input_ids, encoded.labels) if label != -100]
    assert tokenizer.decode(trained).strip() == 'a green picture of a cat'
    image_id = tokenizer.convert_tokens_to_ids('<image>')
    assert encoded.input_ids.count(image_id) == 16 == model.num_image_token  # 56 px / 14, CLS dropped
    assert all(label == -100 for t, label in zip(encoded.input_ids, encoded.labels) if t in (image_id, tokenizer.bos_token_id))
