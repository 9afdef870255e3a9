"""Preference data from the peers to the official MPO rows (datasets_proc/pairs.py), with the rows it refuses."""
import json
import subprocess
import sys

import pytest

OFFICIAL = {'image': 'a.jpg', 'question': '<image>\nWhat dish is it?', 'chosen': 'Mapo tofu.', 'rejected': 'Pizza.'}
SOURCES = {
    'llamafactory': [{'conversations': [{'from': 'human', 'value': '<image>\nWhat dish is it?'}],
                      'chosen': {'from': 'gpt', 'value': 'Mapo tofu.'}, 'rejected': {'from': 'gpt', 'value': 'Pizza.'},
                      'images': ['a.jpg']},
                     {'messages': [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'},
                                   {'role': 'user', 'content': 'And?'}],
                      'chosen': {'role': 'assistant', 'content': 'x'}, 'rejected': {'role': 'assistant', 'content': 'y'}}],
    'swift': [{'messages': [{'role': 'user', 'content': '<image>\nWhat dish is it?'},
                            {'role': 'assistant', 'content': 'Mapo tofu.'}], 'rejected_response': 'Pizza.',
               'images': ['a.jpg']},
              {'messages': [{'role': 'user', 'content': 'Q'}, {'role': 'assistant', 'content': 'A'}]}],
    'rlaifv': [{'image_path': 'a.jpg', 'question': '<image>\nWhat dish is it?', 'chosen': 'Mapo tofu.',
                'rejected': 'Pizza.', 'ds_name': 'x'},
               {'image_path': 'a.jpg', 'question': 'Q', 'chosen': 'same', 'rejected': 'same'}],
    'mmpr': [dict(OFFICIAL), {'image': {'bytes': 'xx'}, 'question': 'Q', 'chosen': 'a', 'rejected': 'b'}],
}
REASONS = {'llamafactory': 'multi-turn prompt', 'swift': 'empty rejected_response', 'rlaifv': 'identical answers',
           'mmpr': 'embedded image'}


@pytest.mark.parametrize('source', sorted(SOURCES))
def test_each_source_becomes_the_official_row(tmp_path, source):
    path = tmp_path / 'in.jsonl'
    path.write_text(''.join(json.dumps(r) + '\n' for r in SOURCES[source]))
    done = subprocess.run([sys.executable, '-m', 'datasets_proc', 'pairs', str(path), '--from', source, '-o',
                           str(tmp_path / 'out.jsonl'), '--rejects', str(tmp_path / 'rejects.jsonl')],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / 'out.jsonl').read_text().splitlines()]
    assert rows == [OFFICIAL]
    rejects = [json.loads(line) for line in (tmp_path / 'rejects.jsonl').read_text().splitlines()]
    assert len(rejects) == 1 and rejects[0]['reason'] == REASONS[source], rejects
