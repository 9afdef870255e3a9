"""VLMEvalKit's rule-based answer reading (InternVL reports its MMBench / MME / POPE / VQA numbers through it),
rule for rule; every reading is (answer, rule), the rule naming what read it (None: no rule did, the output is
unanswered, or goes to the judge where one is given).

Multiple choice (`can_infer`): a refusal phrase reads as 'Z' (never right); otherwise the marks .()[],:;!*#{} become
spaces and the output is split on whitespace: exactly one option letter among the words is the answer (a lone 'Z'
with no letter is 'Z'); else exactly one option whose text (case aside) occurs in the output. An API failure
message skips the letter rule. VLMEvalKit's "A may be an article" check runs only with VERBOSE set: not by default.
Yes/no (`YOrN_Extraction`): the VQA punctuation rule on the lower-cased output, split on whitespace: 'yes' without
'no' is yes, 'no' without 'yes' is no, else unknown. VQA (`process_line`): VQAv2 and TextVQA by the VQA accuracy
over the human answers after the official normalisation (applied to every answer, always); GQA by exact match
after strip and lower case, with no other normalisation.
"""
from ..vqa_normalise import VQA_EVAL_COMMA, digits_and_articles, strip_punctuation, vqa_accuracy

NAME = 'vlmevalkit'
REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
            "I'm sorry, but without the image provided", 'Cannot determine the answer')
API_FAILURE = 'Failed to obtain answer via API'
MARKS = '.()[],:;!*#{}'
REFUSED = 'Z'   # VLMEvalKit's answer for a refusal: scored, never right


def choice(output, options: dict) -> tuple:
    """options {letter: text} -> (letter or 'Z', rule) or (None, None)."""
    output = str(output)
    letter = _letter(output, options)
    if letter:
        return letter, 'refusal' if letter == REFUSED and REFUSED not in options else 'letter'
    lowered = output.lower()
    found = [letter for letter, text in options.items() if str(text).lower() in lowered]
    return (found[0], 'option_text') if len(found) == 1 else (None, None)


def _letter(output: str, options: dict):
    if API_FAILURE in output:
        return None
    if any(phrase in output for phrase in REFUSALS):
        return REFUSED
    for mark in MARKS:
        output = output.replace(mark, ' ')
    words = output.split()
    found = [letter for letter in options if letter in words]
    if len(found) == 1:
        return found[0]
    return REFUSED if not found and REFUSED in words else None


def yes_no(output, benchmark: str = None) -> tuple:
    """-> ('yes' | 'no', 'yes_no') or (None, None) (VLMEvalKit's 'Unknown')."""
    words = strip_punctuation(str(output).lower(), VQA_EVAL_COMMA).split()
    if ('yes' in words) != ('no' in words):
        return ('yes' if 'yes' in words else 'no'), 'yes_no'
    return None, None


def normalise(answer: str) -> str:
    """VLMEvalKit's process_answer: whitespace, punctuation, number words, articles, contractions."""
    return digits_and_articles(strip_punctuation(str(answer).replace('\n', ' ').replace('\t', ' ').strip(),
                                                 VQA_EVAL_COMMA))


def ten_answer_accuracy(output, answers: list) -> float:
    """The VQA accuracy (each human answer left out in turn: min(1, matches among the rest / 3), averaged) on
    VLMEvalKit's normalisation."""
    return vqa_accuracy(output, answers, normalise)[0]


def exact_match(output, answers: list) -> float:
    """GQA's 'accuracy' method: strip and lower case only; the mean over the answers (GQA has one)."""
    prediction = str(output).strip().lower()
    return sum(float(a.strip().lower() == prediction) for a in answers) / len(answers)


def short_answer(output, answers: list, benchmark: str) -> dict:
    """{'parsed', 'score', 'rule'}: GQA by exact match, the others (VQAv2, TextVQA) by the VQA accuracy."""
    if benchmark == 'gqa':
        return {'parsed': str(output).strip().lower() or None, 'score': exact_match(output, answers),
                'rule': 'exact_match'}
    return {'parsed': normalise(output) or None, 'score': ten_answer_accuracy(output, answers), 'rule': 'vqa_accuracy'}
