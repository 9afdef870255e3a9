"""Run in a subprocess with the vlmeval side environment first on PYTHONPATH (vlmtune hidden): VLMEvalKit's own
scoring functions on given outputs. Only the scoring modules are loaded: the packages' __init__ files (which
import every model and API client) are skipped.

    python vlmeval_probe.py CASES.json OUT.json

CASES: {'choice': [[output, options]], 'yes_no': [output], 'vqa': [[output, answers]], 'gqa': [[output, answers]],
'pope': [[truth, output]], 'mme': [[category, image, truth, output]], 'mmbench': [TSV row with its prediction],
'choice_prompt': [[question, options, prediction]], 'yes_no_prompt': [[question, prediction]]}; OUT: the same keys,
VLMEvalKit's reading of each (can_infer; YOrN_Extraction; process_line + hit_calculate), the POPE / MME summaries its
ratings give, MMBench's circular report (mcq_circular_eval, report_acc), the VQA 'Overall', and its judge prompts."""
import glob
import importlib.util
import json
import os
import sys
import tempfile
import types

import hide_vlmtune  # noqa: F401  (first: vlmtune cannot be imported from here on)


def bare_package(name):
    spec = importlib.util.find_spec(name)
    module = types.ModuleType(name)
    module.__path__ = list(spec.submodule_search_locations)
    sys.modules[name] = module


for package in ('vlmeval', 'vlmeval.dataset', 'vlmeval.dataset.utils'):
    bare_package(package)

import pandas as pd  # noqa: E402
from vlmeval.dataset.utils.multiple_choice import build_prompt, build_prompt_cn, mcq_circular_eval, report_acc  # noqa: E402
from vlmeval.dataset.utils.vqa_eval import hit_calculate, process_line  # noqa: E402
from vlmeval.dataset.utils.yorn import MME_rating, POPE_rating, YOrN_Extraction, YOrN_match_prompt  # noqa: E402
from vlmeval.smp import build_option_str, cn_string  # noqa: E402
from vlmeval.utils.matching_util import can_infer  # noqa: E402


def rating(rate, rows):
    with tempfile.NamedTemporaryFile(suffix='.xlsx') as handle:
        pd.DataFrame(rows).to_excel(handle.name, index=False)
        table = rate(handle.name)
    return {str(column): [float(v) if not isinstance(v, str) else v for v in table[column]] for column in table}


def circular(rows):
    """MMBench's circular evaluation as VLMEvalKit runs it with no judge (exact matching), then report_acc."""
    data = pd.DataFrame(rows)
    meta = data[['index', 'answer']].copy()
    before = set(glob.glob('/tmp/*.xlsx'))  # mcq_circular_eval leaves a /tmp/<time>.xlsx behind
    with tempfile.TemporaryDirectory() as tmp:
        main_rows = mcq_circular_eval(None, data.drop(columns=['answer']), meta, 1, f'{tmp}/result.pkl')
        table = report_acc(main_rows)
    for left in set(glob.glob('/tmp/*.xlsx')) - before:
        os.remove(left)
    return {str(column): [float(v) if not isinstance(v, str) else v for v in table[column]] for column in table}


def main(cases_path, out_path):
    cases = json.load(open(cases_path))
    out = {'choice': [can_infer(output, dict(options)) or None for output, options in cases['choice']],
           'yes_no': [YOrN_Extraction(output) for output in cases['yes_no']]}
    for key, source, method, dataset in (('vqa', 'vqa', 'vqa_score', 'VQAv2'), ('textvqa', 'vqa', 'vqa_score', 'TextVQA'),
                                         ('gqa', 'gqa', 'accuracy', 'GQA')):
        lines = [process_line({'answer': str(answers), 'prediction': output}, method=method)
                 for output, answers in cases[source]]
        out[key] = [float(x) for x in hit_calculate(lines, dataset)]
    pope = [{'index': i, 'category': 'random', 'answer': truth, 'extracted': YOrN_Extraction(output)}
            for i, (truth, output) in enumerate(cases['pope'])]
    for row in pope:
        row['score'] = float(row['answer'] == row['extracted'])
    out['pope_rating'] = rating(POPE_rating, pope)
    mme = [{'index': i, 'category': category, 'image_path': image, 'answer': truth,
            'score': float(YOrN_Extraction(output) == truth)} for i, (category, image, truth, output) in
           enumerate(cases['mme'])]
    out['mme_rating'] = rating(MME_rating, mme)
    out['mmbench_report'] = circular(cases['mmbench'])
    out['vqa_overall'] = 100 * sum(out['vqa']) / len(out['vqa'])  # ImageVQADataset's 'Overall': the mean hit
    out['choice_prompt'] = [(build_prompt_cn if cn_string(q) else build_prompt)(q, build_option_str(o), p)
                            for q, o, p in cases['choice_prompt']]
    out['yes_no_prompt'] = [YOrN_match_prompt({'question': q, 'prediction': p}) for q, p in cases['yes_no_prompt']]
    json.dump(out, open(out_path, 'w'))


if __name__ == '__main__':
    main(*sys.argv[1:3])
