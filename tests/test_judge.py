"""The judge fallback (`vlmtune eval --judge URL`): a stub OpenAI-compatible server in the test receives exactly the
outputs no rule read, in VLMEvalKit's judge prompts (tests/test_readers_vlmevalkit.py checks those against
VLMEvalKit's own), with its tries and temperatures, and its replies are scored; the rows say 'judge'."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers.fixed_answers import FixedAnswers
from vlmtune.bench.judge import choice_prompt, yes_no_prompt
from vlmtune.bench.run import run_benchmark
from vlmtune.bench.samples import write_sample


@pytest.fixture
def judge_server():
    """-> (url, received): received holds (prompt, temperature) per request; replies come from `replies`
    (a list, cycled) set on the fixture's state."""
    state = {'received': [], 'replies': ['B']}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, payload):
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send({'data': [{'id': 'stub-judge'}]})

        def do_POST(self):
            request = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
            assert request['model'] == 'stub-judge'
            reply = state['replies'][len(state['received']) % len(state['replies'])]
            state['received'].append((request['messages'][0]['content'], request['temperature']))
            self._send({'choices': [{'message': {'role': 'assistant', 'content': reply}}]})

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{server.server_port}/v1', state
    server.shutdown()


def test_only_unread_multiple_choice_outputs_reach_the_judge(tmp_path, judge_server):
    url, state = judge_server
    tsv = write_sample('mmbench', tmp_path / 'mmb')
    outputs = ['I like turtles', 'A', '**C**']
    result, rows = run_benchmark('mmbench', tsv, FixedAnswers(outputs), limit=2, progress=False, judge=url)
    unread = [row for row in rows if row['prediction'] == 'I like turtles']
    assert result['judged'] == len(unread) == len(state['received']) > 0
    expected = [choice_prompt(row['meta']['question'], row['meta']['options'], row['prediction']) for row in unread]
    assert [prompt for prompt, _ in state['received']] == expected
    assert {temperature for _, temperature in state['received']} == {0}
    assert all(row['parsed'] == 'B' and row['rule'] == 'judge' and row['score'] == float(row['truth'] == 'B')
               for row in unread)
    assert result['unanswered'] == 0 and result['judge'] == url


def test_yes_no_tries_with_rising_temperature_and_a_failed_judge_leaves_it_unanswered(tmp_path, judge_server):
    url, state = judge_server
    state['replies'] = ['Unknown', 'I cannot tell', 'Yes']  # the third try reads
    path = write_sample('pope', tmp_path / 'pope')
    result, rows = run_benchmark('pope', path, FixedAnswers(['hard to say']), limit=1, progress=False, judge=url,
                                 reader='vlmevalkit')  # LLaVA's eval_pope (the official reader) reads every output
    assert result['judged'] == 1 and rows[0]['parsed'] == 'yes' and rows[0]['rule'] == 'judge'
    assert state['received'] == [(yes_no_prompt(rows[0]['prompt'].split('\n')[0], 'hard to say'), t)
                                 for t in (0.0, 0.5, 1.0)]
    state['received'].clear()
    state['replies'] = ['Unknown']
    result, rows = run_benchmark('pope', path, FixedAnswers(['hard to say']), limit=1, progress=False, judge=url,
                                 reader='vlmevalkit')
    assert len(state['received']) == 5 and rows[0]['parsed'] is None and rows[0]['rule'] == 'judge_failed'
    assert result['unanswered'] == 1


def test_open_answer_benchmarks_are_never_judged(tmp_path, judge_server):
    """GQA's truths include 'yes' / 'no', but an unread GQA output is not a yes/no question (VLMEvalKit judges none)."""
    url, state = judge_server
    path = write_sample('gqa', tmp_path / 'gqa')
    result, rows = run_benchmark('gqa', path, FixedAnswers(['']), progress=False, judge=url)
    assert result['unanswered'] == len(rows) > 0 and result['judged'] == 0 and state['received'] == []
