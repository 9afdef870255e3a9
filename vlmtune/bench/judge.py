"""VLMEvalKit's judge fallback: the outputs no rule read (multiple choice and yes/no) are sent with VLMEvalKit's judge
prompts to an OpenAI-compatible chat server (`vlmtune eval --judge URL`; `vlmtune serve` of a local model works,
and nothing leaves the machine unless URL points elsewhere), and the reply is read with the same rules.

Multiple choice: up to 3 tries at temperature 0, each reply read by `can_infer` (a 'Z' reply means no option fits);
yes/no: up to 5 tries at temperature 0.5 * try, each read by `YOrN_Extraction`. Where every try fails VLMEvalKit
draws a random letter; here the output stays unanswered and its row says so (a deliberate difference: a score
should not depend on a draw)."""
import json
import re
import urllib.request

from .readers import vlmevalkit

CHOICE_PROMPT = (
    'You are an AI assistant who will help me to match an answer with several options of a single-choice question. '
    'You are provided with a question, several options, and an answer, and you need to find which option is most '
    'similar to the answer. If the meaning of all options are significantly different from the answer, output Z. '
    'Your should output a single uppercase character in A, B, C, D (if they are valid options), and Z. \n'
    'Example 1: \nQuestion: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n'
    'Answer: a cute teddy bear\nYour output: A\n'
    'Example 2: \nQuestion: What is the main object in image?\nOptions: A. teddy bear B. rabbit C. cat D. dog\n'
    'Answer: Spider\nYour output: Z\n'
    'Example 3: \nQuestion: {}?\nOptions: {}\nAnswer: {}\nYour output: ')
CHOICE_PROMPT_CN = (
    '你是一个帮助我匹配答案与单选题中多个选项的 AI 助手。你会被提供：一个问题，多个选项，一个答案。你的任务是找到与答案意义最相近的选项。'
    '如果所有选项的意义都与答案显著不同，则输出 Z。你应该输出一个单个的大写字母，例如 A, B, C, D（如果它们是有效选项），或 Z。'
    '例 1:问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 一只可爱的泰迪熊\n输出: A\n'
    '例 2: \n问题: 图中最主要的物体是什么?\n选项: A. 泰迪熊 B. 兔子 C. 猫 D. 狗\n答案: 蜘蛛\n输出: Z\n'
    '例 3: \n问题: {}?\n选项: {}\n答案: {}\n输出: ')
YES_NO_PROMPT = (
    'You are an AI assistant who will help me to match an answer with two options of a question. '
    'The options are only Yes / No. You are provided with a question and an answer, '
    'and you need to find which option (Yes / No) is most similar to the answer. '
    'If the meaning of all options are significantly different from the answer, output Unknown. '
    'Your should output a single word among the following 3 choices: Yes, No, Unknown.\n'
    'Example 1: \n'
    "Question: Is the word in this image 'Hello'?\nAnswer: The word in this image is 'Hello'.\nYour output: Yes\n"
    'Example 2: \n'
    "Question: Is the word in this image 'Hello'?\nAnswer: The word in this image is not 'Hello'.\nYour output: No\n"
    'Example 3: \nQuestion: {}?\nAnswer: {}\nYour output: ')
CHOICE_TRIES, YES_NO_TRIES = 3, 5
CJK = re.compile('[\u4e00-\u9fff]')


def option_list(options: dict) -> str:
    return 'There are several options: \n' + ''.join(f'{letter}. {text}\n' for letter, text in options.items())


def choice_prompt(question: str, options: dict, prediction: str) -> str:
    template = CHOICE_PROMPT_CN if CJK.search(question) else CHOICE_PROMPT
    return template.format(question, option_list(options), prediction)


def yes_no_prompt(question: str, prediction: str) -> str:
    return YES_NO_PROMPT.format(question, prediction)


class Judge:
    """An OpenAI-compatible chat endpoint (URL ending in /v1); model: the server's first unless named."""

    def __init__(self, url: str, model: str = None, timeout: float = 120):
        self.url, self.timeout = url.rstrip('/'), timeout
        self.model = model or self._get('/models')['data'][0]['id']

    def _get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=self.timeout) as response:
            return json.load(response)

    def ask(self, prompt: str, temperature: float) -> str:
        body = json.dumps({'model': self.model, 'temperature': temperature,
                           'messages': [{'role': 'user', 'content': prompt}]}).encode()
        request = urllib.request.Request(self.url + '/chat/completions', body, {'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.load(response)['choices'][0]['message']['content'] or ''


def judged_choice(judge: Judge, question: str, options: dict, output: str) -> tuple:
    """(letter or 'Z' or None, the last reply)."""
    reply = ''
    for _ in range(CHOICE_TRIES):
        reply = judge.ask(choice_prompt(question, options, output), temperature=0)
        letter, _ = vlmevalkit.choice(reply, options)
        if letter:
            return letter, reply
    return None, reply


def judged_yes_no(judge: Judge, question: str, output: str) -> tuple:
    reply = ''
    for attempt in range(YES_NO_TRIES):
        reply = judge.ask(yes_no_prompt(question, output), temperature=0.5 * attempt)
        answer, _ = vlmevalkit.yes_no(reply)
        if answer:
            return answer, reply
    return None, reply


def judge_unread(task, questions: list, rows: list, judge: Judge) -> int:
    """Ask the judge about every asked output no rule read, as the task says (`judged_as`: multiple choice on
    meta['options'], or yes/no; a task without it, e.g. open VQA, is never judged, as in VLMEvalKit); the row gets
    the judge's answer and score, rule 'judge' and the reply. Returns how many were sent."""
    if task.judged_as is None:
        return 0
    sent = 0
    for question, row in zip(questions, rows):
        if row['parsed'] is not None or 'image_error' in row:
            continue
        text = question.meta.get('question', question.text)
        if task.judged_as == 'choice':
            answer, reply = judged_choice(judge, text, question.meta['options'], row['prediction'])
        else:
            answer, reply = judged_yes_no(judge, text, row['prediction'])
        sent += 1
        row.update(parsed=answer, score=float(answer == question.truth), rule='judge' if answer else 'judge_failed',
                   judge_reply=reply)
    return sent
