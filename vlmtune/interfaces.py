"""The written contracts of the parts a composition is made of, and of the layouts that hold it
(torchtune's habit: interfaces as `typing.Protocol`). A class satisfies one by having its members; nothing
subclasses these. The contract tests (tests/test_contracts*.py) build every registered part against them.

Settings are the spec's dicts (`{'type': name, **settings}`, the type left out); `tiny_settings` is what the
contract tests and the tiny factory build a part from (timm's `default_cfgs` beside the model).
"""
from typing import Any, Optional, Protocol, Sequence, Tuple, runtime_checkable

import torch


@runtime_checkable
class VisionTower(Protocol):
    """pixels [tiles, 3, S, S] -> features [tiles, tokens, width]."""
    lora_targets: Sequence[str]

    @property
    def width(self) -> int: ...

    @classmethod
    def patch_grid(cls, settings: dict, image_size: int) -> Tuple[int, int]: ...

    @classmethod
    def tiny_settings(cls, image_size: int) -> dict: ...

    def blocks(self) -> list: ...

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Connector(Protocol):
    """features [tiles, tokens, vision width] -> [tiles, tokens out, LLM width]; built as
    `cls(vision_width, llm_width, **settings)`."""
    lora_targets: Sequence[str]

    @classmethod
    def tokens_out(cls, settings: dict, patch_grid: Tuple[int, int], **extra) -> int: ...

    def forward(self, features: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class LLMFamily(Protocol):
    """A registered LLM family entry (model/llm/entry.py has the fields and what reads them)."""
    family: str
    architecture: str
    default_template: str
    lora_targets: Sequence[str]
    native_moe: Optional[str]
    engines: Sequence[str]

    def config(self, settings: dict) -> Any: ...

    def build(self, settings: dict, attn_implementation: str = 'sdpa') -> torch.nn.Module: ...

    def blocks(self, model) -> list: ...

    def logits(self, model, hidden: torch.Tensor) -> torch.Tensor: ...

    def tiny_config(self, common: dict, spec) -> dict: ...


@runtime_checkable
class ImageProcessor(Protocol):
    """An image -> tiles of pixels; how many tiles and in what layout (ImageTokens counts the tokens)."""
    type: str
    merge: str
    image_size: int

    def settings(self) -> dict: ...

    def num_tiles(self, width: int, height: int, n_images: int = 1) -> int: ...

    def layout(self, width: int, height: int, n_images: int = 1) -> Any: ...

    def process(self, image, n_images: int = 1, rng=None, jpeg_augment: bool = False) -> torch.Tensor: ...

    def blank(self) -> torch.Tensor: ...


@runtime_checkable
class Template(Protocol):
    """One conversation format: what is trained, the chat prompt, the Jinja chat_template, stop tokens."""
    name: str
    image_tokens: Tuple[str, str, str]
    added_tokens: Tuple[str, ...]
    stop_tokens: Tuple[str, ...]   # the first is the trained end-of-turn token (`end_token`)

    def prepare(self, conversations, n_images: int) -> list: ...

    def tokenize(self, tokenizer, messages, system_message: str = None, image: str = '<image>'): ...

    def chat_prompt(self, history, question: str, system_message: str = None) -> str: ...

    def chat_template(self, system_message: str = None) -> str: ...


@runtime_checkable
class Layout(Protocol):
    """An on-disk checkpoint layout, owned by some other code (its NAME's tools load it); ORDER ranks
    the layouts a composition could be saved in (the first that holds it is its natural one). Optional:
    `owner_caveat(spec)` -> (why the owner as installed, or as most users have it, does not run the folder right
    although it is right (said at save), the side environment whose owner does) or None."""
    NAME: str
    ORDER: int

    def detect(self, folder) -> bool: ...

    def read_spec(self, folder): ...

    def read_state(self, folder) -> dict: ...

    def load_tokenizer(self, folder): ...

    def unsupported(self, spec) -> Optional[str]: ...

    def to_layout(self, state: dict, spec) -> dict: ...

    def from_layout(self, state: dict, spec) -> dict: ...

    def part_of(self, key: str) -> str: ...

    def write(self, staging, spec, state: dict, tokenizer, dtype, max_shard_bytes: int, base_folder=None): ...

    def describe(self, folder, spec) -> dict: ...
