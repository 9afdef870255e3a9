"""The readers as `vlmtune eval` uses them: each benchmark's default (shown by `eval formats`), `--reader` to pick
another, the reader recorded in results.json and the rule that read each output in predictions.jsonl."""
import json

import pytest

from helpers.fixed_answers import FixedAnswers
from vlmtune.bench.readers import READERS
from vlmtune.bench.run import benchmark, run_benchmark, write_results
from vlmtune.bench.samples import write_sample
from vlmtune.cli import main


def test_each_benchmark_has_a_known_default_reader_and_formats_shows_it(capsys):
    from vlmtune.bench.tasks import REGISTRY
    defaults = {name: benchmark(name).reader.NAME for name in REGISTRY.names()}
    assert set(defaults.values()) <= set(READERS) and defaults['mmbench'] == 'vlmevalkit', defaults
    assert main(['eval', 'formats']) == 0
    table = capsys.readouterr().out
    assert '| default reader |' in table and all(f'| {name} |' in table for name in defaults)


READ = {'vlmevalkit': {'**B**': 'B', '[A]': 'A', 'A': 'A', 'Cannot determine the answer': 'Z'},
        'official': {'**B**': None, '[A]': None, 'A': 'A', 'Cannot determine the answer': None}}


@pytest.mark.parametrize('reader', sorted(READ))
def test_reader_is_recorded_and_each_output_names_its_rule(tmp_path, reader):
    """VLMEvalKit strips '*' and '[]' before looking for the letter; the official reader does not."""
    tsv = write_sample('mmbench', tmp_path / 'mmb')
    outputs = list(READ[reader])
    result, rows = run_benchmark('mmbench', tsv, FixedAnswers(outputs), limit=2, progress=False, reader=reader)
    assert result['reader'] == reader and {row['prediction']: row['parsed'] for row in rows} == READ[reader]
    assert result['unanswered'] == sum(row['parsed'] is None for row in rows)
    assert (result['unanswered'] > 0) == (reader == 'official')
    rules = {row['prediction']: row['rule'] for row in rows}
    assert rules['A'] == 'letter'
    assert rules['Cannot determine the answer'] == ('refusal' if reader == 'vlmevalkit' else None)
    paths = write_results(result, rows, tmp_path / reader)
    assert json.loads(paths['json'].read_text())['reader'] == reader
    assert all('rule' in json.loads(line) for line in paths['predictions'].read_text().splitlines())


def test_an_unknown_reader_is_refused_by_the_cli(capsys):
    with pytest.raises(SystemExit):
        main(['eval', 'MODEL', '--bench', 'mmbench', 'x.tsv', '--reader', 'nope'])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize('reader', sorted(READ))
def test_conversations_read_with_the_reader_too(tmp_path, reader):
    """`--bench conversations` (the demo's and the training hook's path) reads options with the chosen reader."""
    question = 'What is shown?\n(A) red\n(B) blue\n(C) green\n(D) a cat'
    rows = [{'id': i, 'conversations': [{'from': 'human', 'value': question}, {'from': 'gpt', 'value': 'B'}]}
            for i in range(len(READ[reader]))]
    data = tmp_path / 'rows.jsonl'
    data.write_text(''.join(json.dumps(row) + '\n' for row in rows))
    outputs = list(READ[reader])
    result, scored = run_benchmark('conversations', data, FixedAnswers(outputs), progress=False, reader=reader)
    assert result['reader'] == reader
    assert [row['parsed'] for row in scored] == [READ[reader][output] for output in outputs]
    assert all(row['rule'] == (None if row['parsed'] is None else 'refusal' if row['parsed'] == 'Z' else 'letter')
               for row in scored)
