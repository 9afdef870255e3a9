"""Grounding (data/grounding.py, datasets_proc/refcoco.py, --bench refcoco): the official box parse, denormalisation
and IoU on hand-computed cases; data check's box rejects; the RefCOCO converter on a tiny refs pickle +
instances.json (training rows and evaluation lines); `data show --draw` writes the boxes on the image."""
import json
import pickle
import subprocess
import sys

import pytest
from PIL import Image

from vlmtune.bench.run import benchmark
from vlmtune.bench.tasks._base import Question
from vlmtune.data.grounding import REF_PROMPT, first_box, iou, to_1000, to_pixels


@pytest.mark.parametrize('output, box', [
    ('[[250, 100, 750, 500]]', [100, 50, 300, 250]),                            # the notes' tiny check
    ('<ref>the dog</ref><box>[[250,100,750,500]]</box>', [100, 50, 300, 250]),
    ('the dog[[250, 100, 750, 500], [0, 0, 10, 10]]', [100, 50, 300, 250]),    # the first box of several
    ('[0.25, 0.1, 0.75, 0.5]', [100, 50, 300, 250]),                             # sum < 4: already fractions
    ('[1, 1, 1, 1]', [0.4, 0.5, 0.4, 0.5]),                                      # sum 4: divided by 1000
    ('no box here', [0, 0, 0, 0]),
    ('[[1, 2, 3]]', [0, 0, 0, 0]),                                               # three numbers: no match
    ('[[a, b, c, d]]', [0, 0, 0, 0]),                                            # float() fails
])
def test_first_box_and_denormalisation(output, box):
    assert to_pixels(first_box(output), 400, 500) == pytest.approx(box)


@pytest.mark.parametrize('a, b, expected', [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0), ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
    ([0, 0, 10, 10], [0, 0, 10, 20], 0.5), ([0, 0, 10, 10], [20, 20, 30, 30], 0.0), ([0, 0, 0, 0], [0, 0, 0, 0], 0.0)])
def test_iou_without_the_plus_one_pixel(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)


def test_refcoco_scores_at_iou_one_half():
    task = benchmark('refcoco')
    question = Question('val/1', REF_PROMPT.format('the dog'), None, [100.0, 50.0, 300.0, 250.0],
                        {'split': 'refcoco_val', 'width': 400, 'height': 500})
    # [100, 50, 300, 250] vs [100, 50, 300, 450]: IoU 40000 / 80000 = 0.5 -> right; 301 wide of it: wrong
    assert task.score(question, '[[250, 100, 750, 900]]')['score'] == 1.0
    assert task.score(question, '[[250, 100, 750, 902]]')['score'] == 0.0
    unread = task.score(question, 'I cannot see a dog.')
    assert unread['parsed'] is None and unread['score'] == 0.0
    rows = [{'meta': {'split': s}, 'score': v} for s, v in (('a', 1.0), ('a', 0.0), ('b', 1.0))]
    summary = task.summarise(rows)
    assert summary['metrics']['precision_at_1'] == pytest.approx(2 / 3)
    assert summary['breakdown'] == {'a': {'precision_at_1': 0.5, 'n': 2}, 'b': {'precision_at_1': 1.0, 'n': 1}}


def refcoco_release(root):
    """refs(unc).p + instances.json: two images, three refs (one per split), one ref whose box leaves its image."""
    images = root / 'train2014'
    images.mkdir(parents=True)
    Image.new('RGB', (640, 480), 'white').save(images / 'COCO_train2014_000000000001.jpg')
    Image.new('RGB', (320, 200), 'white').save(images / 'COCO_train2014_000000000002.jpg')
    instances = {'images': [{'id': 1, 'file_name': 'COCO_train2014_000000000001.jpg', 'width': 640, 'height': 480},
                            {'id': 2, 'file_name': 'COCO_train2014_000000000002.jpg', 'width': 320, 'height': 200}],
                 'annotations': [{'id': 10, 'image_id': 1, 'bbox': [64, 48, 320, 240], 'category_id': 1},
                                 {'id': 11, 'image_id': 2, 'bbox': [32.5, 20, 100, 50], 'category_id': 2},
                                 {'id': 12, 'image_id': 2, 'bbox': [300, 20, 100, 50], 'category_id': 2}],
                 'categories': [{'id': 1, 'name': 'dog'}, {'id': 2, 'name': 'cat'}]}
    refs = [{'ref_id': 0, 'ann_id': 10, 'image_id': 1, 'split': 'train', 'category_id': 1,
             'sentences': [{'sent_id': 0, 'sent': 'the big dog'}, {'sent_id': 1, 'sent': 'dog on the left'}]},
            {'ref_id': 1, 'ann_id': 11, 'image_id': 2, 'split': 'val', 'category_id': 2,
             'sentences': [{'sent_id': 2, 'sent': 'small cat'}]},
            {'ref_id': 2, 'ann_id': 12, 'image_id': 2, 'split': 'train', 'category_id': 2,
             'sentences': [{'sent_id': 3, 'sent': 'cat off the edge'}]}]
    (root / 'instances.json').write_text(json.dumps(instances))
    with open(root / 'refs(unc).p', 'wb') as handle:
        pickle.dump(refs, handle)
    return root / 'refs(unc).p', root / 'instances.json', images


def test_refcoco_converter_and_the_box_picture(tmp_path, tiny_folder):
    refs, instances, images = refcoco_release(tmp_path)
    cli = [sys.executable, '-m', 'datasets_proc', 'refcoco', str(refs), '--instances', str(instances),
           '--image-root', str(images)]
    done = subprocess.run(cli + ['-o', str(tmp_path / 'train.jsonl')], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in (tmp_path / 'train.jsonl').read_text().splitlines()]
    assert [r['id'] for r in rows] == ['refcoco-0-0', 'refcoco-0-1']   # the box leaving its image is rejected
    assert 'box outside image' in done.stdout
    # [64, 48, 384, 288] in 640 x 480 -> [100, 100, 600, 600]
    assert rows[0]['conversations'] == [
        {'from': 'human', 'value': '<image>\nPlease provide the bounding box coordinate of the region this sentence '
                                   'describes: <ref>the big dog</ref>'},
        {'from': 'gpt', 'value': '<ref>the big dog</ref><box>[[100, 100, 600, 600]]</box>'}]
    done = subprocess.run(cli + ['--split', 'val', '--eval', '-o', str(tmp_path / 'refcoco_val.jsonl')],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = json.loads((tmp_path / 'refcoco_val.jsonl').read_text())
    assert (line['sent'], line['bbox'], line['width'], line['height']) == ('small cat', [32.5, 20, 132.5, 70], 320, 200)
    assert to_1000(line['bbox'], 320, 200) == [102, 100, 414, 350]
    drawn = tmp_path / 'boxes.png'
    done = subprocess.run([sys.executable, '-m', 'vlmtune.cli', 'data', 'show', str(tmp_path / 'train.jsonl'),
                           '--images', str(images), '--model', str(tiny_folder()), '--draw', str(drawn)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with Image.open(drawn) as picture:   # the box's edge is drawn in red at 0.1 * 640 = 64, 0.1 * 480 = 48
        assert picture.size == (640, 480) and picture.getpixel((64, 100)) == (255, 0, 0)
        assert picture.getpixel((320, 240)) == (255, 255, 255)


@pytest.mark.parametrize('answer, kind', [
    ('<ref>dog</ref><box>[[100, 100, 1200, 600]]</box>', 'box_out_of_range'),
    ('<ref>dog</ref><box>[[600, 100, 100, 600]]</box>', 'box_inverted'),
    ('<ref>dog</ref> is there', 'ref_without_box'),
    ('<ref>dog</ref><box>[100, 100, 600]</box>', 'bad_box'),
    ('<ref>dog</ref><box>[[100, 100, 600, 600]]</box> and <ref>cat</ref><box>[[1, 2, 3, 4], [5, 6, 7, 8]]</box>', None),
])
def test_data_check_rejects_bad_boxes(tmp_path, answer, kind):
    from vlmtune.data.check import check_file
    Image.new('RGB', (20, 20)).save(tmp_path / 'a.png')
    row = {'id': 'g', 'image': 'a.png', 'conversations': [
        {'from': 'human', 'value': '<image>\n' + REF_PROMPT.format('dog')}, {'from': 'gpt', 'value': answer}]}
    (tmp_path / 'g.jsonl').write_text(json.dumps(row) + '\n')
    report = check_file(tmp_path / 'g.jsonl', tmp_path, progress=False)
    assert (dict(report.reasons) == {kind: 1}) if kind else (report.kept == 1), report.to_dict()
