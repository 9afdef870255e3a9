"""The VQA answer normalisation of EvalAI's answer processor (the VQAv2 server; TextVQA's m4c copy), and of the VQA
repo's vqaEval.py (VLMEvalKit's copy) -- the two differ only in their comma rule -- so that "Two." and "2", "dont" and "don't", "a dog" and "dog" score alike.

`vqa_normalise` is what the VQAv2 evaluation applies to predictions and to the ten human answers
(punctuation, then number words -> digits, articles dropped, apostrophe-less contractions restored);
`textvqa_normalise` adds the m4c evaluator's first step (lower case, ',' and '?' dropped, "'s" split).
"""
import re

# The official table: an apostrophe-less spelling -> the contraction (only these; e.g. "lets" stays).
_CONTRACTION_PAIRS = """
    aint:ain't arent:aren't cant:can't couldve:could've couldnt:couldn't couldn'tve:couldn't've
    couldnt've:couldn't've didnt:didn't doesnt:doesn't dont:don't hadnt:hadn't hadnt've:hadn't've
    hadn'tve:hadn't've hasnt:hasn't havent:haven't hed:he'd hed've:he'd've he'dve:he'd've hes:he's howd:how'd
    howll:how'll hows:how's Id've:I'd've I'dve:I'd've Im:I'm Ive:I've isnt:isn't itd:it'd itd've:it'd've
    it'dve:it'd've itll:it'll let's:let's maam:ma'am mightnt:mightn't mightnt've:mightn't've
    mightn'tve:mightn't've mightve:might've mustnt:mustn't mustve:must've neednt:needn't notve:not've
    oclock:o'clock oughtnt:oughtn't ow's'at:'ow's'at 'ows'at:'ow's'at 'ow'sat:'ow's'at shant:shan't
    shed've:she'd've she'dve:she'd've she's:she's shouldve:should've shouldnt:shouldn't shouldnt've:shouldn't've
    shouldn'tve:shouldn't've somebody'd:somebodyd somebodyd've:somebody'd've somebody'dve:somebody'd've
    somebodyll:somebody'll somebodys:somebody's someoned:someone'd someoned've:someone'd've
    someone'dve:someone'd've someonell:someone'll someones:someone's somethingd:something'd
    somethingd've:something'd've something'dve:something'd've somethingll:something'll thats:that's
    thered:there'd thered've:there'd've there'dve:there'd've therere:there're theres:there's theyd:they'd
    theyd've:they'd've they'dve:they'd've theyll:they'll theyre:they're theyve:they've twas:'twas wasnt:wasn't
    wed've:we'd've we'dve:we'd've weve:we've werent:weren't whatll:what'll whatre:what're whats:what's
    whatve:what've whens:when's whered:where'd wheres:where's whereve:where've whod:who'd whod've:who'd've
    who'dve:who'd've wholl:who'll whos:who's whove:who've whyll:why'll whyre:why're whys:why's wont:won't
    wouldve:would've wouldnt:wouldn't wouldnt've:wouldn't've wouldn'tve:wouldn't've yall:y'all yall'll:y'all'll
    y'allll:y'all'll yall'd've:y'all'd've y'alld've:y'all'd've y'all'dve:y'all'd've youd:you'd youd've:you'd've
    you'dve:you'd've youll:you'll youre:you're youve:you've
"""
CONTRACTIONS = dict(pair.split(':') for pair in _CONTRACTION_PAIRS.split())
NUMBER_WORDS = {word: str(i) for i, word in enumerate('zero one two three four five six seven eight nine ten'.split())}
NUMBER_WORDS['none'] = '0'
ARTICLES = {'a', 'an', 'the'}
PUNCTUATION = ';/[]"{}()=+\\_-><@`,?!'
# When a comma sits between digits every mark is removed, not spaced. The VQA repo's vqaEval.py (VLMEvalKit's copy)
# asks for one comma ("1,000"; "1,,000" has none); EvalAI's answer processor, the server VQAv2 test-dev is scored on
# (lmms-eval's and m4c's copies), for one or more.
VQA_EVAL_COMMA = re.compile(r'(\d)(,)(\d)')
EVALAI_COMMA = re.compile(r'(?<=\d)(,)+(?=\d)')
# The official pattern: its first group is a lookahead (a typo for a lookbehind) that always holds, so a '.' not
# followed by a digit goes ("2.5" keeps its point) -- the first 32 only: the official call passes re.UNICODE (32)
# where sub() takes its count (VLMEvalKit's copy too).
_PERIOD = re.compile(r'(?!<=\d)(\.)(?!\d)')
_PERIOD_COUNT = re.UNICODE


def strip_punctuation(text: str, digit_comma=EVALAI_COMMA) -> str:
    """A mark next to a space (or any mark, when the text has a comma between digits) is removed; a mark
    inside a word becomes a space ("black/white" -> "black white")."""
    remove_all = digit_comma.search(text) is not None
    out = text
    for mark in PUNCTUATION:
        if remove_all or mark + ' ' in text or ' ' + mark in text:
            out = out.replace(mark, '')
        else:
            out = out.replace(mark, ' ')
    return _PERIOD.sub('', out, count=_PERIOD_COUNT)


def digits_and_articles(text: str) -> str:
    words = [NUMBER_WORDS.get(word, word) for word in text.lower().split()]
    return ' '.join(CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES)


def vqa_normalise(text: str) -> str:
    text = text.replace('\n', ' ').replace('\t', ' ').strip()
    return digits_and_articles(strip_punctuation(text))


def textvqa_normalise(text: str) -> str:
    text = text.lower().replace(',', '').replace('?', '').replace("'s", " 's").strip()
    return vqa_normalise(text)


def vqa_accuracy(prediction: str, answers, normalise=vqa_normalise) -> tuple:
    """(accuracy, matches): the official VQA accuracy of one prediction against the human answers.
    Each answer is left out in turn and the prediction scores min(#other answers equal to it / 3, 1)
    against the rest; the accuracy is the mean over those subsets. With 10 answers of which k match:
    k=0 -> 0, 1 -> 0.3, 2 -> 0.6, 3 -> 0.9, >=4 -> 1 (the short form min(k/3, 1) gives 0.333, 0.667, 1
    for k=1..3). `matches` is k."""
    predicted = normalise(prediction)
    truths = [normalise(answer) for answer in answers]
    if not truths:
        raise ValueError('a VQA question needs at least one human answer')
    matches = sum(truth == predicted for truth in truths)
    subset_scores = [min((matches - (truth == predicted)) / 3, 1.0) for truth in truths]
    return sum(subset_scores) / len(subset_scores), matches
