"""Run inside vLLM's environment: load each folder with vLLM's own offline engine and answer chat
messages greedily (images as data URLs, as an OpenAI client sends them); write {folder: answers or
error} as JSON. Usage: python vllm_probe.py OUT.json REQUESTS.json FOLDER[=CHAT_TEMPLATE] ...
REQUESTS.json: [{"text": ..., "image": path or null}, ...]; CHAT_TEMPLATE: the file `vlmtune serve` would
pass as --chat-template (for tokenizers that add BOS)."""
import base64
import gc
import json
import sys
import time
import traceback


def data_url(path):
    with open(path, 'rb') as handle:
        return 'data:image/png;base64,' + base64.b64encode(handle.read()).decode()


def messages(request):
    content = [{'type': 'text', 'text': request['text']}]
    if request.get('image'):
        content.insert(0, {'type': 'image_url', 'image_url': {'url': data_url(request['image'])}})
    return [{'role': 'user', 'content': content}]


def main():
    from vllm import LLM, SamplingParams
    out, requests, folders = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3:]
    params = SamplingParams(temperature=0, max_tokens=8)
    results = {}
    for argument in folders:
        folder, _, template_file = argument.partition('=')
        template = open(template_file).read() if template_file else None
        started = time.perf_counter()
        try:
            llm = LLM(model=folder, trust_remote_code=True, max_model_len=2048, dtype='float32',
                      limit_mm_per_prompt={'image': 1}, enforce_eager=True)
            loaded = time.perf_counter() - started
            outputs = [llm.chat(messages(r), params, chat_template=template)[0].outputs[0] for r in requests]
            results[folder] = {'answers': [o.text for o in outputs], 'token_ids': [list(o.token_ids) for o in outputs],
                               'load_s': round(loaded, 1)}
            del llm
        except Exception as exc:  # recorded per folder: the table says which layouts load
            results[folder] = {'error': f'{exc.__class__.__name__}: {exc}'[:600], 'trace': traceback.format_exc()[-3000:]}
        gc.collect()
    with open(out, 'w') as handle:
        json.dump(results, handle, indent=1)


if __name__ == '__main__':
    main()
