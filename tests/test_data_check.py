"""Tests for vlmtune.data.check against the bad-input corpus in helpers/bad_corpus.py."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from vlmtune.data import check_images
from vlmtune.data.check import CheckConfig, check_file

from helpers.bad_corpus import KEPT, write_bad_corpus


@pytest.fixture
def corpus(tmp_path):
    return write_bad_corpus(tmp_path / "corpus")


@pytest.fixture
def checked(corpus):
    report = check_file(corpus.jsonl_path, corpus.image_root, CheckConfig(), progress=False)
    return corpus, report


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_rows(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _text_row(row_id: str, answer: str = "Hello.") -> dict:
    return {"id": row_id, "conversations": [{"from": "human", "value": "Hi?"},
                                            {"from": "gpt", "value": answer}]}


def test_corpus_covers_enough_problem_kinds(corpus):
    assert len(corpus.expected_kinds) >= 22
    assert corpus.expected.count(KEPT) >= 3


def test_every_row_gets_its_expected_outcome(checked):
    corpus, report = checked
    rejects = {record["row"]: record["kind"] for record in _read_jsonl(Path(report.rejects_path))}
    actual = [rejects.get(number, KEPT) for number in range(1, len(corpus.expected) + 1)]
    mismatches = [(number, want, got) for number, (want, got)
                  in enumerate(zip(corpus.expected, actual), 1) if want != got]
    assert mismatches == []


def test_counts_add_up(checked):
    corpus, report = checked
    n_lines = len(corpus.jsonl_path.read_bytes().splitlines())
    assert report.total == n_lines == len(corpus.expected)
    assert report.total == report.kept + report.rejected
    assert report.kept == corpus.expected.count(KEPT)
    assert report.reasons == corpus.expected_kinds
    assert report.warnings == corpus.expected_warnings


def test_rejects_file_has_one_record_per_reject(checked):
    corpus, report = checked
    records = _read_jsonl(Path(report.rejects_path))
    assert len(records) == report.rejected
    assert len({record["row"] for record in records}) == len(records)
    for record in records:
        assert set(record) >= {"row", "id", "kind", "reason", "source"}
        assert isinstance(record["reason"], str) and record["reason"].strip()
        assert record["source"] is not None
    by_kind = {record["kind"]: record for record in records}
    assert "not found under" in by_kind["image_missing"]["reason"]
    assert "first used on row 1" in by_kind["duplicate_id"]["reason"]
    assert by_kind["duplicate_id"]["id"] == "good-single"
    assert by_kind["bad_json"]["id"] is None


def test_kept_file_holds_exactly_the_kept_lines_unchanged(checked):
    corpus, report = checked
    lines = corpus.jsonl_path.read_bytes().splitlines()
    expected = [line.decode("utf-8") for line, outcome in zip(lines, corpus.expected)
                if outcome == KEPT]
    assert Path(report.kept_path).read_text(encoding="utf-8").splitlines() == expected


def test_default_outputs_sit_beside_the_input(checked):
    corpus, report = checked
    assert Path(report.kept_path) == corpus.folder / "bad.kept.jsonl"
    assert Path(report.rejects_path) == corpus.folder / "bad.rejects.jsonl"
    leftovers = [p.name for p in corpus.folder.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_input_file_is_unchanged(corpus):
    before = _sha256(corpus.jsonl_path)
    check_file(corpus.jsonl_path, corpus.image_root, progress=False)
    assert _sha256(corpus.jsonl_path) == before


@pytest.mark.parametrize("which", ["kept_path", "rejects_path"])
def test_refuses_to_overwrite_the_input(corpus, which):
    before = _sha256(corpus.jsonl_path)
    with pytest.raises(ValueError, match="is the input file"):
        check_file(corpus.jsonl_path, corpus.image_root, progress=False,
                   **{which: str(corpus.folder / "sub" / ".." / "bad.jsonl")})
    assert _sha256(corpus.jsonl_path) == before


def test_refuses_identical_kept_and_rejects_paths(corpus, tmp_path):
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError, match="same file"):
        check_file(corpus.jsonl_path, corpus.image_root, kept_path=out, rejects_path=out,
                   progress=False)


def test_over_length_rows_are_rejected(tmp_path):
    rows = [_text_row("short"), _text_row("long", "word " * 50), _text_row("unmeasurable")]
    path = _write_rows(tmp_path / "rows.jsonl", rows)

    def fake_token_length(row: dict) -> int:
        if row["id"] == "unmeasurable":
            raise ValueError("tokenizer rejected the text")
        return sum(len(msg["value"].split()) for msg in row["conversations"])

    report = check_file(path, tmp_path, CheckConfig(max_length=20),
                        token_length_fn=fake_token_length, progress=False)
    assert (report.kept, report.rejected) == (1, 2)
    assert report.reasons == Counter({"too_long": 1, "length_error": 1})
    reasons = {r["id"]: r["reason"] for r in _read_jsonl(Path(report.rejects_path))}
    assert "51 tokens" in reasons["long"] and "max_length=20" in reasons["long"]
    assert "tokenizer rejected the text" in reasons["unmeasurable"]


def test_length_is_not_measured_without_max_length(tmp_path):
    path = _write_rows(tmp_path / "rows.jsonl", [_text_row("a")])

    def must_not_be_called(row: dict) -> int:
        raise AssertionError("token_length_fn called without max_length")

    report = check_file(path, tmp_path, CheckConfig(), token_length_fn=must_not_be_called,
                        progress=False)
    assert report.kept == 1


def test_each_image_is_decoded_once(corpus, monkeypatch):
    opened: Counter = Counter()
    real_open = Image.open

    def counting_open(fp, *args, **kwargs):
        opened[str(Path(fp).resolve())] += 1
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(check_images.Image, "open", counting_open)
    check_file(corpus.jsonl_path, corpus.image_root, progress=False)
    good = str((corpus.image_root / "good.jpg").resolve())
    uses = corpus.jsonl_path.read_text(errors="replace").count("good.jpg")
    assert uses >= 4  # several rows share it (one via "./sub/../good.jpg")
    assert opened[good] == 1
    assert max(opened.values()) == 1


@pytest.mark.parametrize("limit", [500, 100])  # 500: our header check; 100: PIL's bomb guard
def test_pixel_limit_rejects_before_decoding(corpus, limit, monkeypatch):
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda im: decoded.append(im.size) or real_load(im))
    report = check_file(corpus.jsonl_path, corpus.image_root,
                        CheckConfig(max_image_pixels=limit), progress=False)
    records = _read_jsonl(Path(report.rejects_path))
    good_single = next(r for r in records if r["id"] == "good-single")
    assert good_single["kind"] == "image_too_large"
    assert f"max_image_pixels={limit}" in good_single["reason"]
    if limit == 500:
        assert "32x24" in good_single["reason"]
        assert (16, 16) in decoded  # small images still get decoded: the spy works
    assert (32, 24) not in decoded


def test_truncated_images_rejected_even_if_pil_is_lenient(corpus):
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES
    max_pixels = Image.MAX_IMAGE_PIXELS
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        report = check_file(corpus.jsonl_path, corpus.image_root, progress=False)
        assert report.reasons["image_truncated"] == 2
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # caller's setting restored
        assert Image.MAX_IMAGE_PIXELS == max_pixels
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient


def test_json_array_input(corpus, tmp_path):
    lines = corpus.jsonl_path.read_bytes().splitlines()
    good_rows = [json.loads(line) for line, outcome in zip(lines, corpus.expected)
                 if outcome == KEPT]
    array = good_rows + [{"conversations": []}, 7, good_rows[0]]
    path = tmp_path / "rows.json"
    path.write_text(json.dumps(array, ensure_ascii=False), encoding="utf-8")

    report = check_file(path, corpus.image_root, progress=False)
    assert report.total == len(array)
    assert report.kept == len(good_rows)
    records = _read_jsonl(Path(report.rejects_path))
    n = len(good_rows)
    assert [(r["row"], r["kind"]) for r in records] == [
        (n + 1, "missing_id"), (n + 2, "not_object"), (n + 3, "duplicate_id")]
    assert records[1]["source"] == 7
    assert _read_jsonl(Path(report.kept_path)) == good_rows
    assert Path(report.kept_path).name == "rows.kept.jsonl"


def test_broken_json_array_is_read_line_by_line(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[\n{"id": "a"}\n', encoding="utf-8")
    report = check_file(path, tmp_path, progress=False)
    assert report.total == 2 and report.rejected == 2
    assert report.reasons == Counter({"bad_json": 1, "conversations_missing": 1})


def test_blank_lines_and_bom_are_tolerated(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(_text_row("a")).encode() + b"\r\n\n  \n"
                     + json.dumps(_text_row("b")).encode())
    report = check_file(path, tmp_path, progress=False)
    assert (report.total, report.kept, report.blank_lines) == (2, 2, 2)
    assert [row["id"] for row in _read_jsonl(Path(report.kept_path))] == ["a", "b"]


def test_progress_bar_shown_for_large_files(tmp_path, capsys):
    rows = [_text_row(f"row-{i}") for i in range(1200)]
    path = _write_rows(tmp_path / "many.jsonl", rows)
    report = check_file(path, tmp_path, progress=True)
    assert report.kept == 1200
    assert "checking many.jsonl" in capsys.readouterr().err


def test_summary_and_to_dict(checked):
    corpus, report = checked
    text = report.summary()
    for kind in corpus.expected_kinds:
        assert kind in text
    assert "image_16bit" in text
    data = json.loads(json.dumps(report.to_dict()))
    assert data["total"] == report.total and data["reasons"]["image_missing"] == 2


def test_script_writes_the_corpus(tmp_path):
    script = Path(__file__).parent / "helpers" / "bad_corpus.py"
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "out")],
                            capture_output=True, text=True, check=True)
    assert (tmp_path / "out" / "bad.jsonl").is_file()
    assert (tmp_path / "out" / "images" / "good.jpg").is_file()
    assert "reject kinds" in result.stdout
