"""The package's reading of each benchmark's own scripts (bench/answers.py, the VQA normalisers): MMBench, ScienceQA
and SEED by the option letter, then the option text; MME by its calculation.py parser, POPE by LLaVA's
eval_pope; VQAv2 by the official VQA evaluation, TextVQA by m4c's, GQA as LLaVA's convert_gqa_for_eval leaves it
for GQA's exact match. Every reading is (answer, rule)."""
from ..answers import FULL_WIDTH, letter_of, option_by_text, yes_no_mme, yes_no_pope
from ..vqa_normalise import textvqa_normalise, vqa_accuracy, vqa_normalise

NAME = 'official'
YES_NO = {'mme': yes_no_mme, 'pope': yes_no_pope}
NORMALISE = {'vqav2': vqa_normalise, 'textvqa': textvqa_normalise}


def choice(output, options: dict) -> tuple:
    output = str(output).translate(FULL_WIDTH)
    letter = letter_of(output, list(options))
    if letter:
        return letter, 'letter'
    letter = option_by_text(output, options)
    return (letter, 'option_text') if letter else (None, None)


def yes_no(output, benchmark: str) -> tuple:
    """MME: 'yes' / 'no' or None; POPE: LLaVA's eval_pope reads every output, 'yes' where it finds no 'no'
    (rule 'default_yes' where the output does not say yes either)."""
    answer = YES_NO[benchmark](output)
    if benchmark == 'pope' and answer == 'yes' and 'yes' not in str(output).lower():
        return answer, 'default_yes'
    return answer, 'yes_no' if answer else None


def short_answer(output, answers: list, benchmark: str) -> dict:
    """{'parsed', 'score', 'rule'}: the ten-answer VQA accuracy, or GQA's exact match on its one answer."""
    if benchmark == 'gqa':
        parsed = output.strip().rstrip('.').lower()
        return {'parsed': parsed or None, 'score': float(parsed == answers[0]), 'rule': 'exact_match'}
    normalise = NORMALISE[benchmark]
    accuracy, matches = vqa_accuracy(output, answers, normalise)
    return {'parsed': normalise(output) or None, 'score': accuracy, 'matches': matches, 'rule': 'vqa_accuracy'}
