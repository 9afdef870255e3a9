"""Official InternVL meta files (data/meta.py, data/mixture.py): a 3-source mixture (repeat_time 0.3 / 2 / 1, one
source with data_augment, one with its own max_dynamic_patch) trains exactly the expected rows, says its per-source
counts, and packs and groups across sources; `data check --meta` counts every row of every source; `vlmtune train
--meta` trains on it; bad meta files each give one message naming the entry and the fix."""
import itertools
import json
import subprocess
import sys

import pytest

from helpers.training import RECIPE
from helpers.training_data import make_colour_dataset
from vlmtune.data.meta import MetaFileError, read_meta
from vlmtune.data.mixture import MixtureDataset
from vlmtune.engine.data import PackedDataset, build_train_dataset
from vlmtune.engine.sampler import LengthGroupedSampler


@pytest.fixture(scope='module')
def mixture(tmp_path_factory):
    """Three sources of 10, 4 and 6 rows; the second has one row whose image is missing."""
    root = tmp_path_factory.mktemp('meta')
    sources = {}
    for name, n, seed in (('general', 10, 1), ('domain', 4, 2), ('extra', 6, 3)):
        data, images = make_colour_dataset(root / name, n=n, seed=seed, name=f'{name}.jsonl')
        sources[name] = (data, images)
    rows = sources['domain'][0].read_text().splitlines()
    broken = json.loads(rows[1])
    broken['image'] = 'missing.png'
    rows[1] = json.dumps(broken)
    sources['domain'][0].write_text('\n'.join(rows) + '\n')
    meta = {'general': {'root': str(sources['general'][1]), 'annotation': str(sources['general'][0]),
                        'repeat_time': 0.3, 'data_augment': False, 'length': 10},
            'domain': {'root': str(sources['domain'][1]), 'annotation': str(sources['domain'][0]), 'repeat_time': 2,
                       'data_augment': True, 'max_dynamic_patch': 1},
            'extra': {'root': str(sources['extra'][1]), 'annotation': str(sources['extra'][0]), 'repeat_time': 1}}
    path = root / 'meta.json'
    path.write_text(json.dumps(meta, indent=1))
    return path


def test_the_trained_rows_are_the_official_selection(mixture, tiny_folder, capsys):
    dataset = build_train_dataset(tiny_folder(), max_length=512, max_tiles=2, meta=str(mixture))
    assert isinstance(dataset, MixtureDataset)
    # general: the first int(10 * 0.3) = 3 rows; domain: its 4 rows twice, row 1 (missing image) out; extra: all 6
    expected = [(0, i) for i in range(3)] + [(1, i) for i in (0, 2, 3) * 2] + [(2, i) for i in range(6)]
    assert dataset.items == expected and len(dataset.lengths) == len(expected) == 15
    printed = capsys.readouterr().out
    assert 'meta file: 15 samples from 3 sources' in printed
    assert 'general: 10 rows x repeat_time 0.3 -> 3 samples' in printed
    assert 'domain: 4 rows x repeat_time 2 -> 6 samples (1 row(s) rejected)' in printed
    assert 'row(s) cannot be trained, e.g.' in printed and 'domain.jsonl row 2' in printed
    # each source is read with its own settings
    specs = [d.spec for d in dataset.datasets]
    assert [s.jpeg_augment for s in specs] == [False, True, False]
    assert [s.image_processor.settings()['max_tiles'] for s in specs] == [2, 1, 2]
    sample = dataset[3]  # the domain source's first row: one tile (max_dynamic_patch 1)
    assert sample['pixel_values'].shape[0] == 1 and int((sample['labels'] != -100).sum()) > 0


def test_packing_and_grouping_span_sources(mixture, tiny_folder):
    packed = build_train_dataset(tiny_folder(), max_length=512, max_tiles=2, meta=str(mixture), packing=True)
    assert isinstance(packed, PackedDataset) and isinstance(packed.dataset, MixtureDataset)
    sources_per_pack = [{packed.dataset.items[i][0] for i in pack} for pack in packed.packs]
    assert any(len(s) > 1 for s in sources_per_pack), sources_per_pack
    assert sorted(i for pack in packed.packs for i in pack) == list(range(15))
    dataset = packed.dataset
    sampler = LengthGroupedSampler(dataset, seed=0, run=8)   # one pass: the whole mixture, runs of 8 neighbours
    one_pass = list(itertools.islice(iter(sampler), len(dataset)))
    assert sorted(one_pass) == list(range(15))
    runs = [one_pass[k:k + 8] for k in range(0, 15, 8)]
    assert any(len({dataset.items[i][0] for i in run}) > 1 for run in runs)


def test_data_check_counts_every_row_of_every_source(mixture, tiny_folder):
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'data', 'check', '--meta', str(mixture), '--model',
                           str(tiny_folder()), '--max-length', '512', '--quiet', '--strict'],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr   # --strict: the domain source has a reject
    table = done.stdout[done.stdout.index('data check --meta'):]
    assert 'general                       10      10         0     0.3       3' in table
    assert 'domain                         4       3         1       2       6' in table
    assert 'extra                          6       6         0       1       6' in table
    assert 'all                           20      19         1              15' in table
    assert 'error: --strict: 1 row(s) rejected' in done.stderr


def test_train_with_a_meta_file(mixture, tiny_folder, tmp_path):
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'train', str(RECIPE), '--checkpoint',
                           str(tiny_folder()), '--meta', str(mixture), '--iters', '2', '--work-dir', str(tmp_path / 'w')],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert 'meta file: 15 samples from 3 sources' in done.stdout


@pytest.mark.parametrize('entry, message', [
    ({'annotation': 'a.jsonl', 'repeat_time': 1}, "entry 'x': no \"root\""),
    ({'root': '.', 'repeat_time': 1}, "entry 'x': no \"annotation\""),
    ({'root': '.', 'annotation': 'nowhere.jsonl'}, 'annotation nowhere.jsonl not found'),
    ({'root': '.', 'annotation': 'GOOD', 'repeat_time': 1.5}, 'repeat_time 1.5 is fractional above 1'),
    ({'root': '.', 'annotation': 'GOOD', 'repeat_time': 0}, 'repeat_time 0 is not a positive number'),
    ({'root': '.', 'annotation': 'GOOD', 'repeat': 2}, "unknown key(s) ['repeat']"),
    ({'root': '.', 'annotation': 'GOOD', 'max_dynamic_patch': 0}, 'max_dynamic_patch 0 is not a positive integer'),
])
def test_bad_entries_are_named_with_the_fix(tmp_path, entry, message):
    good = tmp_path / 'rows.jsonl'
    good.write_text('{}\n')
    entry = {k: (str(good) if v == 'GOOD' else v) for k, v in entry.items()}
    (tmp_path / 'meta.json').write_text(json.dumps({'x': entry}))
    with pytest.raises(MetaFileError) as raised:
        read_meta(tmp_path / 'meta.json')
    assert message in str(raised.value) and str(tmp_path / 'meta.json') in str(raised.value)


def test_repeat_time_as_the_official_code(tmp_path):
    good = tmp_path / 'rows.jsonl'
    good.write_text('{}\n')
    for repeat, rows, expected in ((0.3, 10, [0, 1, 2]), (0.35, 10, [0, 1, 2]), (0.99, 3, [0, 1]), (1, 3, [0, 1, 2]),
                                   (2, 2, [0, 1, 0, 1]), (2.0, 2, [0, 1, 0, 1]), (0.05, 10, [])):
        (tmp_path / 'meta.json').write_text(json.dumps({'x': {'root': '.', 'annotation': str(good),
                                                              'repeat_time': repeat}}))
        assert read_meta(tmp_path / 'meta.json')[0].selection(rows) == expected, repeat
    (tmp_path / 'trailing.json').write_text('{"x": {"root": ".", "annotation": "a.jsonl"},}')
    with pytest.raises(MetaFileError, match='not valid JSON'):
        read_meta(tmp_path / 'trailing.json')


def test_data_show_reads_a_source_with_its_settings(mixture, tiny_folder):
    shown = {}
    for source in ('extra', 'domain'):
        done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'data', 'show', '--meta', str(mixture), '--source',
                               source, '--model', str(tiny_folder()), '--max-tiles', '6', '--index', '0', '--json'],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        shown[source] = json.loads(done.stdout)
    assert shown['domain']['id'].startswith('domain') and shown['domain']['tile_count'] == 1  # its max_dynamic_patch
    assert shown['extra']['id'].startswith('extra') and shown['extra']['tile_count'] > 1      # --max-tiles 6
