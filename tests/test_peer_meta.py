"""Peer mixtures as meta files (datasets_proc/peer_meta.py): LLaMA-Factory's dataset_info.json with and without
interleave_probs, ms-swift's PATH#N; the meta files they write select the expected rows."""
import json
import subprocess
import sys

import pytest
from PIL import Image

from vlmtune.data.meta import read_meta


def chat_rows(n, style):
    if style == 'messages':
        return [{'messages': [{'role': 'user', 'content': '<image>What dish?'},
                              {'role': 'assistant', 'content': f'dish {k}'}], 'images': [f'img/{k}.jpg']}
                for k in range(n)]
    return [{'conversations': [{'from': 'human', 'value': f'question {k}'}, {'from': 'gpt', 'value': 'answer'}]}
            for k in range(n)]


def convert(*args):
    return subprocess.run([sys.executable, '-m', 'datasets_proc', 'meta', *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture
def llamafactory(tmp_path):
    (tmp_path / 'img').mkdir()
    for k in range(10):
        Image.new('RGB', (8, 8)).save(tmp_path / 'img' / f'{k}.jpg')
    (tmp_path / 'food.json').write_text(json.dumps(chat_rows(10, 'messages')))
    (tmp_path / 'general.json').write_text(json.dumps(chat_rows(40, 'conversations')))
    (tmp_path / 'old.json').write_text(json.dumps([{'instruction': 'x', 'output': 'y'}]))
    info = {'food': {'file_name': 'food.json', 'formatting': 'sharegpt', 'columns': {'messages': 'messages',
                                                                                    'images': 'images'},
                     'tags': {'role_tag': 'role', 'content_tag': 'content', 'user_tag': 'user',
                              'assistant_tag': 'assistant'}},
            'general': {'file_name': 'general.json', 'formatting': 'sharegpt'},
            'old': {'file_name': 'old.json'}}
    (tmp_path / 'dataset_info.json').write_text(json.dumps(info))
    return tmp_path / 'dataset_info.json'


def test_llamafactory_interleave_probs_become_repeat_times(llamafactory, tmp_path):
    done = convert(llamafactory, '--from', 'llamafactory', '--dataset', 'food,general', '--interleave-probs',
                   '0.5,0.5', '-o', tmp_path / 'mix')
    assert done.returncode == 0, done.stderr
    sources = read_meta(tmp_path / 'mix' / 'meta.json')
    # interleave_under stops when food (10 rows at p 0.5) runs out: 20 rows, 10 of each
    assert [(s.name, s.repeat_time, len(s.selection(n))) for s, n in zip(sources, (10, 40))] == \
        [('food', 1.0, 10), ('general', 0.25, 10)]
    food = [json.loads(line) for line in (tmp_path / 'mix' / 'food.jsonl').read_text().splitlines()]
    assert food[3]['image'] == 'img/3.jpg' and food[3]['conversations'][1] == {'from': 'gpt', 'value': 'dish 3'}
    assert str(sources[0].root) == str(tmp_path)   # LLaMA-Factory's media_dir default: dataset_info's folder
    done = convert(llamafactory, '--from', 'llamafactory', '--dataset', 'food,general', '-o', tmp_path / 'concat')
    assert [s.repeat_time for s in read_meta(tmp_path / 'concat' / 'meta.json')] == [1, 1]


@pytest.mark.parametrize('args, message', [
    (['--dataset', 'old'], "'old' is formatted 'alpaca'"),
    (['--dataset', 'nope'], "no dataset 'nope'"),
    (['--dataset', 'food,general', '--interleave-probs', '0.5'], '1 values for 2 datasets'),
    (['--dataset', 'food,general', '--interleave-probs', '0.5,0.6'], 'positive and summing to 1')])
def test_llamafactory_bad_input(llamafactory, tmp_path, args, message):
    done = convert(llamafactory, '--from', 'llamafactory', *args, '-o', tmp_path / 'out')
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_swift_rows_per_dataset(tmp_path):
    for name in ('a', 'b', 'c'):
        (tmp_path / f'{name}.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in chat_rows(10, 'conversations')))
    done = convert(f'{tmp_path}/a.jsonl#5', f'{tmp_path}/b.jsonl#20', tmp_path / 'c.jsonl', '--from', 'swift',
                   '-o', tmp_path / 'mix')
    assert done.returncode == 0, done.stderr
    sources = read_meta(tmp_path / 'mix' / 'meta.json')
    assert [(s.name, s.repeat_time, len(s.selection(10))) for s in sources] == \
        [('a', 0.5, 5), ('b', 2, 20), ('c', 1, 10)]
    done = convert(f'{tmp_path}/a.jsonl#15', '--from', 'swift', '-o', tmp_path / 'bad')
    assert done.returncode == 2 and 'use #10 or #20' in done.stderr, done.stderr
