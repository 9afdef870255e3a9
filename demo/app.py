"""Gradio chat demo over `vlmtune.serve.pipeline`: `python demo/app.py MODEL [--examples EVAL.jsonl]`.

One pipeline is loaded per process; each browser session keeps its own chat Session in a gr.State.
An uploaded image is attached to the next question; answers stream into the chatbot. `--examples`
fills a gallery with images and questions from an eval set (conversation JSONL), beside a few
example prompts, so the model can be tried without bringing an image.
"""
import argparse
import json
import os
from pathlib import Path

os.environ.setdefault('GRADIO_ANALYTICS_ENABLED', 'False')  # the demo runs offline

import gradio as gr  # noqa: E402

from vlmtune.serve import GenerationConfig, Session, pipeline  # noqa: E402
from vlmtune.serve.pipeline import resolve_backend  # noqa: E402

BACKENDS = ['auto', 'torch', 'turbomind', 'pytorch']


def describe_backend(pipe) -> str:
    if pipe.backend == 'torch':
        device = pipe.model.device.type
        return f"torch ({'CPU' if device == 'cpu' else 'GPU'})"
    return f'{pipe.backend} (LMDeploy, GPU)'


EXAMPLE_PROMPTS = ['Describe the image.', 'What is the main object in the picture?', 'What colour is it?']


def examples_from(data_path, image_root=None, limit=8) -> list:
    """[[image path, question]] from the first rows of a conversation JSONL that have one image."""
    data_path = Path(data_path)
    root = Path(image_root) if image_root else data_path.parent
    examples = []
    with open(data_path, encoding='utf-8') as handle:
        for line in handle:
            row = json.loads(line) if line.strip() else {}
            image = row.get('image')
            if isinstance(image, str) and (root / image).is_file() and row.get('conversations'):
                question = row['conversations'][0]['value'].replace('<image>\n', '').replace('<image>', '').strip()
                examples.append([str(root / image), question])
            if len(examples) == limit:
                break
    if not examples:
        raise ValueError(f'{data_path}: no rows with an image under {root} for the examples gallery')
    return examples


def new_state() -> dict:
    """Per-browser-session state: the pipeline Session and the image last sent into it."""
    return {'session': None, 'sent': None}


def build_app(model_path, backend='auto', max_tiles=None, examples=None) -> gr.Blocks:
    model_path = Path(model_path).resolve()
    backend = resolve_backend(model_path, backend)
    if max_tiles is not None and backend != 'torch':
        raise ValueError(f'max_tiles is supported by the torch backend only, not {backend!r}')
    pipe = pipeline(model_path, backend=backend, **({} if max_tiles is None else {'max_tiles': max_tiles}))
    backend_line = f'backend: {describe_backend(pipe)} · model: `{model_path}`'

    def on_image(image):
        return 'Image attached to the next question.' if image else ''

    def on_send(text, image, chat, state, max_new_tokens, temperature, top_p):
        """Streams (chat, state, status, textbox); the shown image goes along unless already sent."""
        state, chat, text = state or new_state(), list(chat or []), (text or '').strip()
        if not text:
            yield chat, state, '⚠️ Type a question first.', text
            return
        attach = image if image and image != state['sent'] else None
        gen = GenerationConfig(max_new_tokens=int(max_new_tokens), temperature=float(temperature),
                               top_p=float(top_p))
        session = state['session'] = state['session'] or Session()
        try:
            pieces = pipe.chat((text, attach) if attach else text, session=session, gen_config=gen, stream=True)
        except (ValueError, OSError, TypeError) as exc:  # e.g. an unreadable image
            message = str(exc).replace(str(attach), Path(attach).name) if attach else str(exc)
            yield chat, state, f'⚠️ Error: {message}', text
            return
        if attach:
            chat.append({'role': 'user', 'content': gr.Image(attach)})
        chat += [{'role': 'user', 'content': text}, {'role': 'assistant', 'content': ''}]
        yield chat, state, 'Generating…', ''
        try:
            for piece in pieces:
                chat[-1] = {'role': 'assistant', 'content': chat[-1]['content'] + piece}
                yield chat, state, 'Generating…', ''
        except Exception as exc:  # keep the UI alive; the session is left as before this turn
            chat[-1] = {'role': 'assistant', 'content': f'⚠️ Error: {exc}'}
            yield chat, state, f'⚠️ Error: {exc}', text
            return
        chat[-1] = {'role': 'assistant', 'content': session.response.text or chat[-1]['content']}
        state['sent'] = attach or state['sent']
        yield chat, state, '', ''

    def on_clear(state):
        """Empty chat and a fresh session; a still-shown image goes with the next question."""
        if state and state['session'] is not None:
            state['session'].reset()
        return [], new_state(), '', ''

    with gr.Blocks(title='vlmtune demo') as app:
        gr.Markdown('## vlmtune · InternVL chat')
        gr.Markdown(backend_line, elem_id='backend-line')
        state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1):
                # image_mode=None: gradio hands over the uploaded file as it is (else it may re-save it
                # turned upright by EXIF); the pipeline applies the model's own EXIF rule.
                image = gr.Image(type='filepath', image_mode=None, label='Image', height=280, elem_id='image-input')
                with gr.Accordion('Generation settings', open=False):
                    max_new = gr.Slider(1, 2048, value=256, step=1, label='max new tokens', elem_id='max-new')
                    temperature = gr.Slider(0.0, 2.0, value=0.0, step=0.05, label='temperature (0 = greedy)')
                    top_p = gr.Slider(0.05, 1.0, value=1.0, step=0.05, label='top_p')
            with gr.Column(scale=2):
                chatbot = gr.Chatbot(label='Chat', elem_id='chatbot', height=420)
                status = gr.Markdown('', elem_id='status')
                with gr.Row():
                    text = gr.Textbox(placeholder='Ask about the image…', show_label=False, scale=5,
                                      elem_id='question')
                    send = gr.Button('Send', variant='primary', scale=1, elem_id='send')
                clear = gr.Button('Clear', elem_id='clear')
        with gr.Row():
            if examples:
                gr.Examples(examples, [image, text], label='Examples from the eval set (click one, then Send)',
                            elem_id='examples', examples_per_page=8)
            gr.Examples([[p] for p in EXAMPLE_PROMPTS], [text], label='Example prompts', elem_id='prompts')
        image.change(on_image, image, status)
        inputs = [text, image, chatbot, state, max_new, temperature, top_p]
        outputs = [chatbot, state, status, text]
        send.click(on_send, inputs, outputs)
        text.submit(on_send, inputs, outputs)
        clear.click(on_clear, state, [chatbot, state, status, text])
        chatbot.clear(on_clear, state, [chatbot, state, status, text])  # the chatbot's own trash icon
    return app


def main(argv=None):
    ap = argparse.ArgumentParser(description='Chat with an InternVL model folder in the browser.')
    ap.add_argument('model', help='model folder (official InternVL format)')
    ap.add_argument('--host', default='127.0.0.1', help='address to bind (default: 127.0.0.1, this machine only)')
    ap.add_argument('--port', type=int, default=7860)
    ap.add_argument('--backend', choices=BACKENDS, default='auto')
    ap.add_argument('--max-tiles', type=int, default=None, help='cap on image tiles (default: the model\'s)')
    ap.add_argument('--examples', help='eval-set conversation JSONL: its first images and questions as a gallery')
    ap.add_argument('--images', help='image root of --examples (default: its folder)')
    args = ap.parse_args(argv)
    examples = examples_from(args.examples, args.images) if args.examples else None
    app = build_app(args.model, backend=args.backend, max_tiles=args.max_tiles, examples=examples)
    app.queue().launch(server_name=args.host, server_port=args.port, show_error=True)


if __name__ == '__main__':
    main()
