"""Reading a model's free-form output as the benchmarks' reference scripts do.

Multiple choice (MMBench, ScienceQA, SEED; VLMEvalKit's rule): the option's letter first — the one
letter standing alone ("B", "B.", "(B)", "B)", ":B" ...) — then the option's text (exactly one option
whose text occurs in the output). Yes/no: MME's parser (Otter's) and POPE's (LLaVA's). Whatever
none of these can read is None (POPE's parser reads everything): counted as unanswered (and wrong), never dropped.
"""
# (prefix, suffix) around a letter that still reads as the letter, as VLMEvalKit's can_infer_option.
LETTER_FORMS = [('', ''), ('', '.'), ('', ','), ('', ':'), ('', ')'), ('', ').'), ('(', ')'), ('(', ').'),
                (':', ''), (':', ','), (':', '.'), (':', ')'), (':', ').')]


def letter_of(output: str, letters) -> str:
    """The one option letter the output names, else None."""
    words = [word.strip() for word in output.split()]
    for prefix, suffix in LETTER_FORMS:
        found = [letter for letter in letters if prefix + letter + suffix in words]
        if len(found) != 1:
            continue
        # A bare "A" in a longer sentence is more likely the article than the option.
        if (prefix, suffix) == ('', '') and found == ['A'] and len(words) > 3:
            continue
        return found[0]
    return None


def option_by_text(output: str, options: dict) -> str:
    """The letter of the one option whose text occurs in the output (case aside), else None."""
    text = output.lower()
    found = [letter for letter, option in options.items() if str(option).lower() in text]
    return found[0] if len(found) == 1 else None


FULL_WIDTH = str.maketrans('（）：，．', '():,.')  # CJK punctuation around a letter reads as the ASCII forms


def yes_no_mme(output: str):
    """MME's parser: the whole answer 'yes'/'no' (a lone 'y'/'n'), else 'yes' or 'no' within its
    first four characters; anything else is None ('other' in MME's script)."""
    text = output.lower().strip().replace('.', '')
    if text in ('yes', 'no'):
        return text
    if len(text) == 1:
        return {'y': 'yes', 'n': 'no'}.get(text)
    head = text[:4]
    return 'yes' if 'yes' in head else 'no' if 'no' in head else None


def yes_no_pope(output: str) -> str:
    """POPE's parser (LLaVA's eval_pope): the first sentence, commas dropped, split on spaces; 'No', 'no' or
    'not' among the words -> 'no', everything else 'yes' (an empty or off-topic output too)."""
    words = output.split('.')[0].replace(',', '').split(' ')
    return 'no' if 'No' in words or 'not' in words or 'no' in words else 'yes'


def option_lines(options: dict) -> str:
    """'A. text' per line, the layout LLaVA's and InternVL's MCQ prompts use."""
    return '\n'.join(f'{letter}. {text}' for letter, text in options.items())


def missing(value) -> bool:
    """An empty cell as TSV / JSON writers leave it: None, NaN, '', 'nan', 'none'."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    return isinstance(value, str) and value.strip().lower() in ('', 'nan', 'none')


def letters(n: int) -> list:
    return [chr(ord('A') + i) for i in range(n)]
