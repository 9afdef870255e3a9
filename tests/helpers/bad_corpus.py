"""A corpus of broken (and a few good) training rows for `vlmtune data check`.

Importable by tests (`write_bad_corpus`) and runnable as a script:

    python tests/helpers/bad_corpus.py OUT_DIR

writes OUT_DIR/images/ and OUT_DIR/bad.jsonl (image root: OUT_DIR/images) and
prints the expected outcome of every line: "kept" or the reject kind.
"""
from __future__ import annotations

import io
import json
import random
import struct
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

KEPT = "kept"


@dataclass
class BadCorpus:
    folder: Path
    jsonl_path: Path
    image_root: Path
    expected: list[str]  # expected[i] is the outcome of line i + 1: KEPT or a reject kind
    expected_warnings: Counter = field(default_factory=Counter)

    @property
    def expected_kinds(self) -> Counter:
        return Counter(kind for kind in self.expected if kind != KEPT)


# ---------------------------------------------------------------- images


def _noise_image(size: tuple[int, int], seed: int) -> Image.Image:
    # Noise does not compress, so half the file really is missing pixel data.
    data = random.Random(seed).randbytes(size[0] * size[1] * 3)
    return Image.frombytes("RGB", size, data)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _huge_png_header(width: int, height: int) -> bytes:
    """A tiny PNG that claims to be width x height (1-bit gray); costs no RAM to write."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b""))


def _write_images(images: Path) -> None:
    images.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 24), (200, 30, 30)).save(images / "good.jpg")
    Image.new("RGB", (24, 32), (30, 200, 30)).save(images / "good2.png")
    Image.new("CMYK", (16, 16), (0, 128, 255, 0)).save(images / "cmyk.jpg")
    Image.new("RGBA", (16, 16), (10, 20, 30, 128)).save(images / "rgba.png")
    palette = Image.new("RGB", (16, 16), (50, 60, 70)).convert("P")
    palette.save(images / "palette.png", transparency=0)
    Image.new("LA", (16, 16), (90, 200)).save(images / "gray_alpha.png")
    Image.new("I;16", (16, 16), 40000).save(images / "gray16.png")
    (images / "truncated.jpg").write_bytes(_encoded(_noise_image((64, 64), 1), "JPEG")[:1500])
    png = _encoded(_noise_image((64, 64), 2), "PNG")
    (images / "truncated.png").write_bytes(png[: len(png) // 2])
    (images / "empty.jpg").write_bytes(b"")
    (images / "not_an_image.jpg").write_text("this is a text file, not a JPEG\n")
    (images / "huge.png").write_bytes(_huge_png_header(20000, 20000))
    Image.new("RGB", (1, 1)).save(images / "tiny.png")
    Image.new("RGB", (600, 2)).save(images / "strip.png")  # aspect 300 > 200


# ---------------------------------------------------------------- rows


def _qa(question: str = "<image>\nWhat is shown?", answer: str = "A red square.") -> list[dict]:
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


def _row(row_id, conversations, image=None, **extra) -> dict:
    row = {"id": row_id} if row_id is not None else {}
    if image is not None:
        row["image"] = image
    row["conversations"] = conversations
    row.update(extra)
    return row


def _lines() -> list[tuple[bytes, str, str | None]]:
    """(line bytes, expected outcome, expected warning kind or None), in file order."""
    cases: list[tuple[object, str, str | None]] = [
        # --- good rows
        (_row("good-single", _qa(), "good.jpg"), KEPT, None),
        (_row("good-untagged", _qa("What colour is it?"), "good.jpg"), KEPT, "image_tag_implicit"),
        (_row("good-multi", _qa("<image>\n<image>\nCompare the two."), ["good.jpg", "good2.png"]),
         KEPT, None),
        (_row("good-text", _qa("What is 2 + 2?", "4")), KEPT, None),
        (_row("good-system-multiturn", [{"from": "system", "value": "Be brief."}]
              + _qa() + _qa("And the shape?", "Square."), "good2.png"), KEPT, None),
        (_row("good-cmyk", _qa(), "cmyk.jpg"), KEPT, None),
        (_row("good-rgba", _qa(), "rgba.png"), KEPT, None),
        (_row("good-palette", _qa(), "palette.png"), KEPT, None),
        (_row("good-gray-alpha", _qa(), "gray_alpha.png"), KEPT, None),
        (_row("good-16bit", _qa(), "gray16.png"), KEPT, "image_16bit"),
        (_row("good-unicode", _qa("<image>\nQu'est-ce que c'est ? 猫"), "./sub/../good.jpg"),
         KEPT, None),
        # --- image file problems
        (_row("img-missing", _qa(), "does/not/exist.jpg"), "image_missing", None),
        (_row("img-second-missing", _qa("<image>\n<image>\nSame?"), ["good.jpg", "gone.png"]),
         "image_missing", None),
        (_row("img-truncated-jpg", _qa(), "truncated.jpg"), "image_truncated", None),
        (_row("img-truncated-png", _qa(), "truncated.png"), "image_truncated", None),
        (_row("img-empty", _qa(), "empty.jpg"), "image_empty", None),
        (_row("img-not-image", _qa(), "not_an_image.jpg"), "image_undecodable", None),
        (_row("img-huge", _qa(), "huge.png"), "image_too_large", None),
        (_row("img-tiny", _qa(), "tiny.png"), "image_too_small", None),
        (_row("img-strip", _qa(), "strip.png"), "image_bad_aspect", None),
        (_row("img-escape", _qa(), "../bad.jsonl"), "image_path_escape", None),
        (_row("img-absolute", _qa(), "/etc/hostname"), "image_path_escape", None),
        (_row("img-bad-field", _qa(), 5), "bad_image_field", None),
        (_row("img-two-one-tag", _qa("<image>\nCompare."), ["good.jpg", "good2.png"]),
         "image_tag_mismatch", None),
        (_row("img-tag-no-image", _qa("<image>\nWhat is it?")), "image_tag_mismatch", None),
        # --- line / JSON problems
        (b'{"id": "broken-json", "conversations": [', "bad_json", None),
        (b"[1, 2, 3]", "not_object", None),
        (b"42", "not_object", None),
        (b'{"id": "latin1-\xe9t\xe9", "conversations": []}', "bad_encoding", None),
        (b'{"id": "lone-surrogate", "conversations": [{"from": "human", "value": "Hi \\ud800"}, '
         b'{"from": "gpt", "value": "Hello."}]}', "bad_encoding", None),
        # --- id problems
        (_row(None, _qa("Hi?", "Hello.")), "missing_id", None),
        (_row(123, _qa("Hi?", "Hello.")), "bad_id_type", None),
        (_row("good-single", _qa(), "good.jpg"), "duplicate_id", None),
        # --- conversation problems
        ({"id": "no-conv", "image": "good.jpg"}, "conversations_missing", None),
        (_row("conv-string", "human: hi / gpt: hello"), "conversations_not_list", None),
        (_row("conv-empty", []), "conversations_empty", None),
        (_row("conv-system-only", [{"from": "system", "value": "Be brief."}]),
         "conversations_empty", None),
        (_row("role-user", [{"from": "user", "value": "Hi?"},
                            {"from": "assistant", "value": "Hello."}]), "role_alias", None),
        (_row("role-bot", [{"from": "human", "value": "Hi?"},
                           {"from": "bot", "value": "Hello."}]), "unknown_role", None),
        (_row("role-missing", [{"value": "Hi?"}, {"from": "gpt", "value": "Hello."}]),
         "unknown_role", None),
        (_row("not-alternating", [{"from": "human", "value": "Hi?"},
                                  {"from": "human", "value": "Hello?"},
                                  {"from": "gpt", "value": "Hi."}]), "roles_not_alternating", None),
        (_row("late-system", _qa("Hi?", "Hello.") + [{"from": "system", "value": "x"}]),
         "roles_not_alternating", None),
        (_row("starts-gpt", [{"from": "gpt", "value": "Hello."}] + _qa("Hi?", "Hi.")),
         "first_not_human", None),
        (_row("ends-human", _qa("Hi?", "Hello.") + [{"from": "human", "value": "Bye?"}]),
         "last_not_gpt", None),
        (_row("empty-answer", _qa("Hi?", "")), "empty_value", None),
        (_row("blank-answer", _qa("Hi?", " \n\t ")), "empty_value", None),
        (_row("number-answer", [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": 4}]),
         "non_string_value", None),
        (_row("message-string", ["human: hi", {"from": "gpt", "value": "Hello."}]),
         "bad_message", None),
    ]
    lines = []
    for case, outcome, warning in cases:
        line = case if isinstance(case, bytes) else json.dumps(case, ensure_ascii=False).encode()
        lines.append((line, outcome, warning))
    return lines


def write_bad_corpus(folder: str | Path) -> BadCorpus:
    """Write images/ and bad.jsonl under `folder`; return what the checker should conclude."""
    folder = Path(folder)
    image_root = folder / "images"
    _write_images(image_root)
    lines = _lines()
    jsonl_path = folder / "bad.jsonl"
    jsonl_path.write_bytes(b"".join(line + b"\n" for line, _, _ in lines))
    warnings = Counter(warning for _, outcome, warning in lines if outcome == KEPT and warning)
    return BadCorpus(folder, jsonl_path, image_root, [outcome for _, outcome, _ in lines], warnings)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    corpus = write_bad_corpus(argv[0])
    for number, outcome in enumerate(corpus.expected, 1):
        print(f"{number:4d}  {outcome}")
    kinds = corpus.expected_kinds
    print(f"wrote {corpus.jsonl_path} ({len(corpus.expected)} rows, "
          f"{corpus.expected.count(KEPT)} expected kept, {len(kinds)} reject kinds); "
          f"image root: {corpus.image_root}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
