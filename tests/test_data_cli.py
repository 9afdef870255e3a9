"""`vlmtune data show` and `vlmtune data check --model` on a tiny model folder."""
import json

import pytest
from PIL import Image

from vlmtune.cli import main as cli_main


def write_rows(folder, rows):
    Image.new('RGB', (120, 56), 'red').save(folder / 'wide.png')
    path = folder / 'data.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return path


ROW = {'id': 'w', 'image': 'wide.png', 'conversations': [{'from': 'human', 'value': 'What is it?'},
                                                         {'from': 'gpt', 'value': 'A red box.'}]}


def test_data_show_text_and_json(tiny_folder, tmp_path, capsys):
    folder = tiny_folder('internlm2', '300m')
    path = write_rows(tmp_path, [ROW])
    assert cli_main(['data', 'show', str(path), '--images', str(tmp_path), '--model', str(folder)]) == 0
    text = capsys.readouterr().out
    assert 'grid 2x1, 3 tiles' in text  # 120x56 -> 2x1 + thumbnail
    assert '<img><IMG_CONTEXT>*12</img>\nWhat is it?<|im_end|>' in text
    assert "[0] 'A red box.<|im_end|>'" in text
    assert cli_main(['data', 'show', str(path), '--images', str(tmp_path), '--model', str(folder), '--json',
                     '--max-tiles', '1']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['tile_count'] == 1 and info['token_count'] == len(info['input_ids']) == len(info['labels'])
    assert info['prompt'].startswith('<s><|im_start|>system\n')
    assert '<IMG_CONTEXT>*4</img>' in info['prompt']
    assert cli_main(['data', 'show', str(path), '--images', str(tmp_path), '--model', str(folder),
                     '--index', '5']) == 2
    assert 'out of range' in capsys.readouterr().err


def test_data_check_with_model_rejects_over_length(tiny_folder, tmp_path, capsys):
    folder = tiny_folder('qwen2', '300m')
    long_row = dict(ROW, id='long', conversations=[{'from': 'human', 'value': 'word ' * 300},
                                                   {'from': 'gpt', 'value': 'ok'}])
    path = write_rows(tmp_path, [ROW, long_row])
    assert cli_main(['data', 'check', str(path), '--images', str(tmp_path), '--model', str(folder),
                     '--max-length', '200', '--quiet']) == 0
    out = capsys.readouterr().out
    rejects = [json.loads(line) for line in (tmp_path / 'data.rejects.jsonl').read_text().splitlines()]
    kept = [json.loads(line) for line in (tmp_path / 'data.kept.jsonl').read_text().splitlines()]
    assert [r['id'] for r in kept] == ['w'] and [r['id'] for r in rejects] == ['long']
    assert 'max_length 200' in rejects[0]['reason'] and 'rejected                       1' in out


def test_strict_makes_any_reject_a_failure_in_check_converters_and_training(tiny_folder, tmp_path, capsys):
    from datasets_proc.__main__ import main as convert_main
    from vlmtune.engine import build_train_dataset
    folder = tiny_folder('qwen2', '300m')
    missing = dict(ROW, id='gone', image='nope.png')
    path = write_rows(tmp_path, [ROW, missing])
    check = ['data', 'check', str(path), '--images', str(tmp_path), '--quiet']
    assert cli_main(check) == 0 and cli_main(check + ['--strict']) == 1
    assert '--strict: 1 row(s) rejected' in capsys.readouterr().err
    llava_json = tmp_path / 'llava.json'
    llava_json.write_text(json.dumps([dict(ROW, id='a'), dict(ROW, id='b', image='nope.png')]))
    convert = ['llava', str(llava_json), '--image-root', str(tmp_path), '-o']
    assert convert_main(convert + [str(tmp_path / 'c1.jsonl')]) == 0
    assert convert_main(convert + [str(tmp_path / 'c2.jsonl'), '--strict']) == 1
    assert (tmp_path / 'c2.jsonl').exists()                    # the kept rows are written all the same
    assert len(build_train_dataset(folder, str(path), str(tmp_path), max_length=512)) == 1
    with pytest.raises(ValueError, match=r'1 row\(s\) cannot be trained, e.g. row 2: .*--strict stops here'):
        build_train_dataset(folder, str(path), str(tmp_path), max_length=512, strict=True)
