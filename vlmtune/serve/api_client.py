"""The session API of `pipeline(...)` over an OpenAI-compatible server (`vlmtune serve`, LMDeploy's
api_server, `vllm serve`): `ApiPipeline(url).chat(prompt, session, gen_config, stream)`.

A session keeps the conversation as OpenAI messages; each image goes, as a PNG data URL, in the turn
that brought it, with its EXIF block: the server applies the model's EXIF orientation rule (`vlmtune
serve` runs vLLM with the rule the folder records).
"""
import base64
import io
from concurrent.futures import ThreadPoolExecutor
from typing import List

from .pipeline import GenerationConfig, Response, Session, split_prompt


def data_url(image) -> str:
    buffer = io.BytesIO()
    exif = image.getexif()
    image.save(buffer, format='PNG', **({'exif': exif.tobytes()} if len(exif) else {}))
    return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode()


def user_message(text: str, images) -> dict:
    if not images:
        return {'role': 'user', 'content': text}
    parts = [{'type': 'image_url', 'image_url': {'url': data_url(image)}} for image in images]
    return {'role': 'user', 'content': parts + [{'type': 'text', 'text': text.replace('<image>\n', '')}]}


class ApiPipeline:
    backend = 'api'

    def __init__(self, url: str, model: str = None, api_key: str = 'none', timeout: float = 600):
        from openai import OpenAI
        self.client = OpenAI(base_url=url, api_key=api_key, timeout=timeout)
        self.url = url
        self.model = model or self.client.models.list().data[0].id

    def _request(self, messages, gen_config, stream=False):
        g = gen_config or GenerationConfig()
        return self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=g.max_new_tokens, stream=stream,
            temperature=g.temperature, top_p=g.top_p if g.temperature > 0 else 1.0,
            extra_body={'top_k': g.top_k if g.temperature > 0 else 1, 'repetition_penalty': g.repetition_penalty})

    def chat(self, prompt, session=None, gen_config=None, stream=False):
        session = session or Session()
        text, images = split_prompt(prompt)
        messages = (session.backend_session or []) + [user_message(text, images)]
        if stream:
            return self._stream(session, text, messages, gen_config)
        reply = self._request(messages, gen_config)
        return self._record(session, text, messages, reply.choices[0].message.content,
                            reply.usage.completion_tokens, reply.choices[0].finish_reason)

    def _stream(self, session, text, messages, gen_config):
        pieces, finish = [], None
        for chunk in self._request(messages, gen_config, stream=True):
            if chunk.choices:
                delta = chunk.choices[0].delta.content or ''
                finish = chunk.choices[0].finish_reason or finish
                if delta:
                    pieces.append(delta)
                    yield delta
        answer = ''.join(pieces)
        self._record(session, text, messages, answer, None, finish)

    @staticmethod
    def _record(session, text, messages, answer, tokens, finish):
        session.backend_session = messages + [{'role': 'assistant', 'content': answer}]
        session.history.append((text, answer))
        session.response = Response(answer, tokens or 0, finish)
        return session

    def infer(self, prompts: List, gen_config=None) -> List[Response]:
        return [self.chat(p, None, gen_config).response for p in prompts]

    def batch_answers(self, prompts: List, gen_config=None, workers: int = 16) -> List[str]:
        """Concurrent single-turn requests: the server batches them."""
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda p: self.chat(p, None, gen_config).response.text, prompts))
