"""One EXIF orientation rule per model: `data check` flags rotated photos; training, the torch pipeline
and the vLLM server give a rotated phone photo the same tiles and prompt; the rule travels in the folder."""
import base64
import io
import json

import pytest
from PIL import Image

from vlmtune.cli import main
from vlmtune.data.check import check_file
from vlmtune.data.dataset import ConversationDataset
from vlmtune.formats import CheckpointError, load, read_spec, save
from vlmtune.serve import GenerationConfig, pipeline
from vlmtune.tiny import TinySpec, make_tiny_folder

GEN = GenerationConfig(max_new_tokens=4)


@pytest.fixture(scope='module')
def photo(tmp_path_factory):
    """A phone photo stored 168 x 56 (landscape) with EXIF orientation 6: upright it is 56 x 168."""
    root = tmp_path_factory.mktemp('exif')
    (root / 'images').mkdir()
    image = Image.new('RGB', (168, 56), (200, 30, 30))
    image.paste((20, 20, 220), (0, 0, 56, 56))
    exif = image.getexif()
    exif[0x0112] = 6
    image.save(root / 'images' / 'phone.jpg', exif=exif.tobytes(), quality=95)
    rows = [{'id': 'p', 'image': 'phone.jpg', 'conversations': [{'from': 'human', 'value': '<image>\nWhat is it?'},
                                                                {'from': 'gpt', 'value': 'a flag'}]}]
    (root / 'data.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return root


@pytest.fixture(scope='module')
def folders(engine_base, tmp_path_factory):
    """The served engine model (the official rule: ignore) and a copy that records 'transpose'."""
    root = tmp_path_factory.mktemp('exif-models')
    ignore = engine_base
    model, tokenizer = load(ignore)
    model.spec = model.spec.override({'image_processor': {'exif': 'transpose'}})
    return {'ignore': ignore, 'transpose': save(model, tokenizer, root / 'tinyvl-transpose', layout='internvl',
                                                dtype='fp32')}


def test_data_check_flags_the_rotated_photo(photo, capsys):
    report = check_file(photo / 'data.jsonl', photo / 'images', kept_path=photo / 'k.jsonl',
                        rejects_path=photo / 'r.jsonl', progress=False)
    assert report.warnings['image_exif_rotated'] == 1 and report.exif_rotated == [(1, 'phone.jpg')]
    assert 'EXIF-rotated images' in report.summary() and 'row 1: phone.jpg' in report.summary()


def test_the_rule_travels_in_the_folder(folders, tmp_path):
    config = json.loads((folders['transpose'] / 'config.json').read_text())
    assert config['exif_orientation'] == 'transpose'
    assert 'exif_orientation' not in json.loads((folders['ignore'] / 'config.json').read_text())  # official: none
    assert read_spec(folders['transpose']).exif_rule == 'transpose'
    model, tokenizer = load(folders['transpose'])
    with pytest.raises(CheckpointError, match="cannot hold the EXIF rule 'transpose'"):
        save(model, tokenizer, tmp_path / 'hf', layout='internvl_hf')


@pytest.mark.parametrize('rule', ['ignore', 'transpose'])
def test_training_and_the_pipeline_give_the_photo_the_same_tiles(rule, photo, folders):
    spec = read_spec(folders[rule])
    from vlmtune.formats import load_tokenizer
    sample = ConversationDataset(photo / 'data.jsonl', photo / 'images',
                                 spec.data_spec(load_tokenizer(folders[rule])), progress=False)[0]
    session = pipeline(folders[rule], backend='torch').chat(('What is it?', str(photo / 'images' / 'phone.jpg')),
                                                            gen_config=GEN)
    assert bool((session.images[0] == sample['pixel_values']).all()) and sample['pixel_values'].shape[0] == 4
    assert session.image_sizes[0] == ((168, 56) if rule == 'ignore' else (56, 168))
    # Stored landscape 3 x 1 + thumbnail; upright portrait 1 x 3 + thumbnail: same count, other pixels.
    other = 'transpose' if rule == 'ignore' else 'ignore'
    theirs = pipeline(folders[other], backend='torch').chat(('What is it?', str(photo / 'images' / 'phone.jpg')),
                                                            gen_config=GEN)
    assert not bool((theirs.images[0] == session.images[0]).all())


def first_token_logprobs(pipe, question, image):
    """log p(first answer token) over the vocabulary, from our model, the pipeline's rule applied."""
    import torch
    from vlmtune.data.image.orientation import apply_rule
    image = apply_rule(image, pipe.model.spec.exif_rule)
    tiles = pipe.image_processor.process(image, 1)
    query = pipe.model.image_tokens.expand(pipe.model.prompt('<image>\n' + question), [tiles.shape[0]])
    ids = pipe.model.template.chat_inputs(pipe.tokenizer, query)['input_ids']
    with torch.no_grad():
        logits = pipe.model(pixel_values=tiles, input_ids=ids, image_flags=torch.ones(tiles.shape[0], 1)).logits
    return torch.log_softmax(logits[0, -1].float(), -1)


@pytest.mark.engines
def test_vllm_applies_the_folder_rule_to_raw_photo_bytes(photo, folders, vllm_server):
    # InternVL's grid for the photo is 3 x 1 stored, 1 x 3 upright: the same prompt length, other tiles;
    # so the check is the first answer token's log-probabilities, ours under each rule against vLLM's.
    from vlmtune.serve.api_client import ApiPipeline, data_url
    raw = (photo / 'images' / 'phone.jpg').read_bytes()
    with Image.open(io.BytesIO(raw)) as stored:
        stored.load()
        ours = first_token_logprobs(pipeline(folders['ignore'], backend='torch'), 'What is it?', stored)
        upright = first_token_logprobs(pipeline(folders['transpose'], backend='torch'), 'What is it?', stored)
        ours_url = data_url(stored.convert('RGB'))
    assert b'eXIf' in base64.b64decode(ours_url.split(',', 1)[1])   # the client keeps the EXIF block (PNG chunk)
    api = ApiPipeline(vllm_server.url, model=folders['ignore'].name)   # the shared server: rule 'ignore'
    # A client sending the file as it is, and ours (PNG with the EXIF block).
    for url in ('data:image/jpeg;base64,' + base64.b64encode(raw).decode(), ours_url):
        reply = api.client.chat.completions.create(
            model=api.model, max_tokens=1, temperature=0, logprobs=True,
            extra_body={'return_token_ids': True},
            messages=[{'role': 'user', 'content': [{'type': 'image_url', 'image_url': {'url': url}},
                                                   {'type': 'text', 'text': 'What is it?'}]}])
        token = reply.choices[0].model_extra['token_ids'][0]
        served = reply.choices[0].logprobs.content[0].logprob
        assert abs(served - float(ours[token])) < 1e-4      # the stored pixels, as training saw them
        assert abs(served - float(upright[token])) > 1e-3   # not turned upright


def test_bad_rule_is_one_line(tmp_path, capsys):
    from vlmtune.engine import build_train_dataset
    with pytest.raises(ValueError, match="exif rule 'upright': choose ignore or transpose"):
        build_train_dataset(make_tiny_folder(tmp_path / 'm', TinySpec()), __file__, tmp_path, exif='upright')
    assert main(['data', 'check', str(tmp_path / 'none.jsonl'), '--images', str(tmp_path)]) != 0
