"""`pipeline(model_path, backend=...)` with `pipe.chat(prompt, session=None, gen_config=None, stream=False)`.

A prompt is text or (text, image | [images]); images are PIL images or paths, allowed in any turn.
`chat` returns the session (its `.response.text` holds the answer); pass it back to continue.
`stream=True` returns an iterator of text pieces and fills the session when exhausted.
Backends: `turbomind` / `pytorch` call LMDeploy's own pipeline (GPU); `torch` is the in-process
vlmtune model (CPU or GPU); `auto` picks LMDeploy when a GPU and lmdeploy are present, else torch.
"""
import itertools
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, Optional

import torch
from PIL import Image

from ..data.image.orientation import apply_rule
from ..data.image.tokens import IMAGE_TAG

_session_ids = itertools.count(1)


class NeedsGPU(RuntimeError):
    """A feature that needs a CUDA GPU was asked for on a machine without one."""


@dataclass
class GenerationConfig:
    max_new_tokens: int = 512
    temperature: float = 0.0     # 0 means greedy
    top_p: float = 1.0
    top_k: int = 50
    repetition_penalty: float = 1.0

    def to_hf(self) -> dict:
        if self.temperature <= 0:
            return dict(max_new_tokens=self.max_new_tokens, do_sample=False,
                        repetition_penalty=self.repetition_penalty)
        return dict(max_new_tokens=self.max_new_tokens, do_sample=True, temperature=self.temperature,
                    top_p=self.top_p, top_k=self.top_k, repetition_penalty=self.repetition_penalty)


@dataclass
class Response:
    text: str = ''
    generate_token_len: int = 0
    finish_reason: Optional[str] = None


@dataclass
class Session:
    session_id: int = field(default_factory=lambda: next(_session_ids))
    history: list = field(default_factory=list)        # [(question as sent, answer)]
    images: list = field(default_factory=list)         # per image: [tiles, 3, S, S]
    image_sizes: list = field(default_factory=list)    # per image: (width, height)
    response: Response = field(default_factory=Response)
    backend_session: object = None                    # LMDeploy's own session object

    def reset(self):
        self.history, self.images, self.image_sizes, self.response, self.backend_session = [], [], [], Response(), None


def split_prompt(prompt):
    """text | (text, image) | (text, [images]) -> (text, [PIL images]): LMDeploy's prompt forms. The image
    may come first too ((image, text)), the order a chat template places them in."""
    if isinstance(prompt, str):
        return prompt, []
    if not isinstance(prompt, (tuple, list)) or len(prompt) != 2:
        raise TypeError('prompt must be text or (text, image | [images])')
    text, images = prompt if isinstance(prompt[0], str) or not isinstance(prompt[1], str) else prompt[::-1]
    images = images if isinstance(images, (list, tuple)) else [images]
    return text, [open_image(img) for img in images]


def open_image(image) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert('RGB')
    path = Path(image)
    try:
        with Image.open(path) as img:
            return img.convert('RGB')
    except (OSError, ValueError) as exc:
        raise ValueError(f'{path}: cannot read image ({exc.__class__.__name__}: {exc})') from None


def tag_images(text: str, n_images: int) -> str:
    """Image tags for a turn's new images, unless the text already places them."""
    if n_images == 0 or IMAGE_TAG in text:
        return text
    if n_images == 1:
        return IMAGE_TAG + '\n' + text
    return ''.join(f'Image-{i + 1}: <image>\n' for i in range(n_images)) + text


def lmdeploy_query(text: str, images: list):
    """LMDeploy's prompt for one turn. It places images in pair order, so one image goes first,
    `(image, text)`: the `<image>\\n` + question that chat() builds. `(text, image)` would put it after."""
    if not images:
        return text
    if len(images) == 1 and IMAGE_TAG not in text:
        return images[0], text
    return tag_images(text, len(images)), images


class TorchPipeline:
    """The in-process vlmtune model; one lock serialises generation across threads."""
    backend = 'torch'

    def __init__(self, model_path, device=None, dtype=None, max_tiles=None, load_bits=None):
        """load_bits: 4 or 8 quantizes the LLM with bitsandbytes after loading (GPU only)."""
        from ..formats import load
        from ..formats.adapter import is_adapter, load_adapted
        if load_bits and not torch.cuda.is_available():
            raise NeedsGPU(f'--load-{load_bits}bit needs a CUDA GPU (bitsandbytes has no CPU kernels); '
                               f'on CPU load the folder in full precision')
        device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
        dtype = dtype or (torch.bfloat16 if device == 'cuda' else torch.float32)
        overrides = {'image_processor': {'max_tiles': max_tiles}} if max_tiles else None
        # One read of the folder: the model's spec and tokenizer serve the data path too.
        if is_adapter(model_path):  # a LoRA adapter folder (convert --adapter-only): its base + the adapter
            self._attach(*load_adapted(model_path, dtype=dtype, device=device, spec_overrides=overrides))
        else:
            self._attach(*load(model_path, dtype=dtype, device=device, spec_overrides=overrides))
        if load_bits:
            from ..model.quantize import quantize_for_inference
            quantize_for_inference(self.model, load_bits)

    @classmethod
    def from_model(cls, model, tokenizer) -> 'TorchPipeline':
        """A pipeline over a model already in memory (e.g. the one a training run holds)."""
        pipe = cls.__new__(cls)
        pipe._attach(model, tokenizer)
        return pipe

    def _attach(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.image_processor = model.spec.build_image_processor()
        self._lock = threading.Lock()

    def _pixels(self, images, n_total):
        return [self.image_processor.process(img, n_total).to(self.model.device, self.model.dtype) for img in images]

    def _generate(self, session, text, images, gen_config, streamer=None):
        images = [apply_rule(img, self.model.spec.exif_rule) for img in images]  # as training opened them
        new = self._pixels(images, max(1, len(images)))
        question = tag_images(text, len(new))
        all_images, all_sizes = session.images + new, session.image_sizes + [img.size for img in images]
        pixels = torch.cat(all_images) if all_images else None
        gen = gen_config.to_hf()
        if streamer is not None:
            gen['streamer'] = streamer
        history = list(session.history)
        spatial = self.model.image_tokens.merge != 'flat'  # LLaVA-NeXT merges need each image's size
        with self._lock:
            answer = self.model.chat(self.tokenizer, pixels, question, gen, history=history,
                                     num_patches_list=[t.shape[0] for t in all_images],
                                     image_sizes=all_sizes if spatial and all_sizes else None)
        session.images, session.image_sizes = all_images, all_sizes
        session.history = history
        session.response = Response(answer, len(self.tokenizer(answer, add_special_tokens=False).input_ids), 'stop')
        return session

    def chat(self, prompt, session=None, gen_config=None, stream=False):
        session = session or Session()
        gen_config = gen_config or GenerationConfig()
        text, images = split_prompt(prompt)
        if not stream:
            return self._generate(session, text, images, gen_config)
        return self._stream(session, text, images, gen_config)

    def _stream(self, session, text, images, gen_config) -> Iterator[str]:
        from transformers import TextIteratorStreamer
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=False, skip_special_tokens=True)
        errors = []

        def work():
            try:
                self._generate(session, text, images, gen_config, streamer)
            except BaseException as exc:  # surfaced to the consumer below
                errors.append(exc)
                streamer.end()
        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        for piece in streamer:
            if piece:
                yield piece
        thread.join()
        if errors:
            raise errors[0]

    def infer(self, prompts: List, gen_config=None) -> List[Response]:
        return [self.chat(p, None, gen_config).response for p in prompts]

    def batch_answers(self, prompts: List, gen_config=None) -> List[str]:
        """One answer per single-turn prompt (text, or (text, one image)), generated as left-padded
        batches: the prompts with an image together, the text-only ones together."""
        gen = (gen_config or GenerationConfig()).to_hf()
        parsed = [split_prompt(p) for p in prompts]
        if any(len(images) > 1 for _, images in parsed):
            raise ValueError('batch_answers takes at most one image per prompt; use chat() for several')
        answers = [None] * len(prompts)
        spatial = self.model.image_tokens.merge != 'flat'
        for with_image in (True, False):
            indices = [i for i, (_, images) in enumerate(parsed) if bool(images) == with_image]
            if not indices:
                continue
            images = [apply_rule(parsed[i][1][0], self.model.spec.exif_rule) for i in indices] if with_image else []
            tiles = self._pixels(images, 1)
            with self._lock:
                out = self.model.batch_chat(
                    self.tokenizer, torch.cat(tiles) if tiles else None, [parsed[i][0] for i in indices], gen,
                    num_patches_list=[t.shape[0] for t in tiles] if tiles else [0] * len(indices),
                    image_sizes=[img.size for img in images] if spatial and images else None)
            for i, answer in zip(indices, out):
                answers[i] = answer
        return answers


class LMDeployPipeline:
    """LMDeploy's own pipeline (GPU): TurboMind, or its PyTorch engine (e.g. for Phi3)."""

    def __init__(self, model_path, backend='turbomind', **engine_kwargs):
        import lmdeploy
        self.backend = backend
        config = (lmdeploy.TurbomindEngineConfig(**engine_kwargs) if backend == 'turbomind'
                  else lmdeploy.PytorchEngineConfig(**engine_kwargs))
        self._lmdeploy = lmdeploy
        self._pipe = lmdeploy.pipeline(str(model_path), backend_config=config)
        from ..formats import read_spec
        self.exif_rule = read_spec(model_path).exif_rule  # LMDeploy takes pixels as given: the rule is ours

    def _query(self, prompt):
        text, images = split_prompt(prompt)
        return text, lmdeploy_query(text, [apply_rule(img, self.exif_rule) for img in images])

    def _gen(self, gen_config):
        g = gen_config or GenerationConfig()
        greedy = g.temperature <= 0
        return self._lmdeploy.GenerationConfig(max_new_tokens=g.max_new_tokens, top_k=1 if greedy else g.top_k,
                                               top_p=g.top_p, temperature=max(g.temperature, 1e-5),
                                               repetition_penalty=g.repetition_penalty)

    def chat(self, prompt, session=None, gen_config=None, stream=False):
        session = session or Session()
        text, query = self._query(prompt)
        inner = self._pipe.chat(query, session=session.backend_session, gen_config=self._gen(gen_config))
        session.backend_session = inner
        session.history.append((text, inner.response.text))
        session.response = Response(inner.response.text, inner.response.generate_token_len,
                                    inner.response.finish_reason)
        return iter([session.response.text]) if stream else session

    def infer(self, prompts, gen_config=None):
        return [self.chat(p, None, gen_config).response for p in prompts]

    def batch_answers(self, prompts, gen_config=None):
        """LMDeploy batches a list of prompts itself (continuous batching)."""
        queries = [self._query(p)[1] for p in prompts]
        return [r.text for r in self._pipe(queries, gen_config=self._gen(gen_config))]


def lmdeploy_available() -> bool:
    try:
        import lmdeploy  # noqa: F401
        return True
    except ImportError:
        return False


def resolve_backend(model_path, backend='auto') -> str:
    if backend in ('torch', 'turbomind', 'pytorch'):
        if backend != 'torch' and not torch.cuda.is_available():
            raise RuntimeError(f'backend {backend!r} is LMDeploy, which needs a GPU; use backend="torch" on CPU')
        return backend
    if backend != 'auto':
        raise ValueError(f'backend {backend!r}: choose auto, turbomind, pytorch or torch')
    if torch.cuda.is_available() and lmdeploy_available():
        from ..formats import read_spec
        from ..formats.adapter import is_adapter
        if is_adapter(model_path):
            return 'torch'  # TurboMind serves merged folders only
        # TurboMind where the LLM's entry says it serves the family, else LMDeploy's PyTorch engine.
        return 'turbomind' if 'turbomind' in read_spec(model_path).component('llm').engines else 'pytorch'
    return 'torch'


def pipeline(model_path, backend='auto', **kwargs):
    backend = resolve_backend(model_path, backend)
    if backend == 'torch':
        return TorchPipeline(model_path, **kwargs)
    return LMDeployPipeline(model_path, backend, **kwargs)
