"""The embedded default's code path, shortened (`vlmtune demo --quick`): the tuned model beats the
base on held-out dishes, and the report is written."""
import json

import pytest
from vlmtune.demo import run_demo

pytestmark = pytest.mark.trainings


def test_quick_journey_tuned_beats_base(tmp_path):
    work = tmp_path / 'demo'
    results = run_demo(work, rebuild_base=True, quick=True)
    # Held-out dishes: the tuned model beats the base in both forms and predicts the answers' tokens
    # far better; the general task stays within the full run's 5-point retention bound.
    assert results['tuned/domain_open'] > results['base/domain_open'] + 0.1, results
    assert results['tuned/domain_choice'] > results['base/domain_choice'] + 0.1, results
    assert results['tuned/domain_answer_tokens'] > results['base/domain_answer_tokens'] + 0.2, results
    assert results['tuned/general'] >= results['base/general'] - 0.05, results
    # The same held-out dishes in MMBench's layout, scored circularly (every rotation right).
    assert results['tuned/mmbench_circular'] > results['base/mmbench_circular'] + 0.1, results
    for name in ('report.md', 'report.png', 'results.json', 'base/config.json', 'tuned/config.json',
                 'eval/tuned_domain_choice.jsonl', 'eval/mmbench/compare.png', 'eval/mmbench/tuned/results.md'):
        assert (work / name).exists(), name
    report = (work / 'report.md').read_text()
    assert 'dishes, multiple choice' in report and '**assistant**' in report
    assert json.loads((work / 'tuned' / 'config.json').read_text())['max_dynamic_patch'] == 1
