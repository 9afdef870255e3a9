"""Adversarial model outputs, written once for every reader oracle (VLMEvalKit's, lmms-eval's, LLaVA's own scripts):
markdown, brackets, trailing marks, letter then text, text then letter, refusals, case, leading dots and newlines, a
stray article "A" in a long sentence, and the rare VQA inputs (the 32-period strip, a double comma)."""
import itertools

from vlmtune.bench.tasks.mme import COGNITION, PERCEPTION

OPTIONS = [{'A': 'red', 'B': 'blue', 'C': 'green', 'D': 'a cat'}, {'A': 'Yes', 'B': 'No'},
           {'A': '1990', 'B': '2000', 'C': 'New York', 'D': 'York', 'E': 'none of these'}]
CHOICE_FORMS = ['{L}', '**{L}**', 'Answer: **{L}**', '[{L}]', '{L}!', '{L};', '({L})', '{L}.', '{L})', ':{L}',
                '{L}. {T}', '{L}.{T}', '{L}: {T}', 'The correct option is ({L}), i.e. {T}', 'The answer is {L}',
                '{T}', 'It is {T}.', '{T} ({L})', '\n{L}', '.{L}', '...{L}', ' {l}', '{l}.', 'Option {L}',
                '{L} or {M}', '{L}\n{M}', 'A {T} is what I see, so {L}', 'There is a {T} in the picture and it is A',
                'Cannot determine the answer', "I'm sorry, but without the image provided I cannot answer {L}",
                'Z', 'Z. none', '#{L}#', '{{{L}}}', '{L}*', '{T}!!', '{T}, not {U}', 'Neither', '{L},{M}', '\t{L}\t']
YES_NO = ['yes', 'no', 'Yes', 'No', 'YES', 'NO', 'yes!', 'No!', 'no.', 'Yes, there is.', 'No, there is not.',
          'Yes and no', 'not sure', 'There is no dog.', 'I think so.', 'y', 'n', '"yes"', '(no)', 'yes/no', 'Yes;',
          '**No**', 'Answer: yes', 'The answer is No.', 'nope', 'yes-no', 'Yes\n', '\nNo', 'no,yes', 'Yes. No.']
DECORATIONS = ['{}', '{} ', '.{}', '{}.', '**{}**']
VQA_OUTPUTS = ['2', 'two', 'Two.', 'The answer is 2', 'a dog', 'dogs', 'Dog', 'red, white', 'red,white', '1,000',
               '1000', '1,000.5', 'yes.', 'Yes', 'U.S.A.', '3.5', 'none', '0', 'dont', "don't", 'its', "it's",
               'black/white', 'black and white', 'left-hand', '10:30', '$5', 'a.b.c.d', 'well...', 'Youre right',
               '2' + '.' * 40, '1,,000']  # the rare ones: the 32-period strip, a double comma
VQA_ANSWERS = [['2'] * 10, ['2'] * 3 + ['two'] * 7, ['dog'] * 5 + ['dogs'] * 5, ['red white'] * 10,
               ['1000'] * 4 + ['1,000'] * 6, ["don't"] * 10, ['black and white'] * 2 + ['black white'] * 8,
               ['yes'] * 10, ['usa'] * 3 + ['u.s.a.'] * 7, ["you're right"] * 2 + ['0'] * 8]
GQA_ANSWERS = [['yes'], ['dog'], ['2'], ['left'], ['black and white']]


def choice_cases() -> list:
    """[output, options] for every form, option set and letter."""
    cases = []
    for options in OPTIONS:
        letters = list(options)
        for form, letter in itertools.product(CHOICE_FORMS, letters):
            other = letters[(letters.index(letter) + 1) % len(letters)]
            cases.append([form.format(L=letter, l=letter.lower(), M=other, T=options[letter], U=options[other]),
                          options])
    return cases


def yes_no_outputs() -> list:
    return [form.format(base) for base, form in itertools.product(YES_NO, DECORATIONS)]


def mmbench_rows(groups=60) -> list:
    """MMBench TSV rows of circular groups (index = group + rotation * 1e6), the options rotated a step per pass,
    each pass answered by an adversarial form of the right letter, a wrong letter, or the option text."""
    rows, options = [], OPTIONS[0]
    letters, forms = list(options), CHOICE_FORMS
    for group in range(groups):
        truth = letters[group % 4]
        for step in range(4):
            shown = dict(zip(letters, [options[letters[(k + step) % 4]] for k in range(4)]))
            answer = next(k for k, v in shown.items() if v == options[truth])
            pick = (group * 5 + step * 3) % (len(forms) + 8)
            letter = answer if pick < len(forms) + 4 else letters[(letters.index(answer) + 1) % 4]
            form = forms[pick % len(forms)] if pick < len(forms) else '{L}'
            rows.append({'index': group + step * 1_000_000, 'question': 'What is shown?', **shown, 'answer': answer,
                         'prediction': form.format(L=letter, l=letter.lower(), M=letter, T=shown[letter], U=''),
                         'category': f'category {group % 3}', 'l2-category': f'ability {group % 2}', 'split': 'dev'})
    return rows


def cases() -> dict:
    yes_no = yes_no_outputs()
    mme = [[task, f'{task}/{image}.jpg', truth, yes_no[(i * 7 + image * 3 + k) % len(yes_no)]]
           for i, task in enumerate(PERCEPTION + COGNITION) for image in range(3)
           for k, truth in enumerate(('Yes', 'No'))]
    return {'choice': choice_cases(), 'yes_no': yes_no,
            'vqa': [[o, a] for o, a in itertools.product(VQA_OUTPUTS, VQA_ANSWERS)],
            'gqa': [[o, a] for o, a in itertools.product(VQA_OUTPUTS, GQA_ANSWERS)],
            'pope': [[('Yes', 'No')[i % 2], output] for i, output in enumerate(yes_no)], 'mme': mme,
            'mmbench': mmbench_rows(),
            'choice_prompt': [['What is shown', OPTIONS[0], 'I like turtles'], ['图中是什么', OPTIONS[2], '不知道'],
                              ['Which year', OPTIONS[2], 'B?']],
            'yes_no_prompt': [['Is there a dog in the image', 'Maybe, hard to say.'], ['Is it red', '']]}
