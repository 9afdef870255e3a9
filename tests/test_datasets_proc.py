"""datasets_proc converters: exact rows, rejects with reasons, image paths, split, no overwrites."""

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from datasets_proc import csv_folder, foodieqa, hf_dataset, llava, sharegpt
from datasets_proc.__main__ import main
from datasets_proc.canonical import IMAGE_TAG, row_images, validate_row, write_jsonl
from datasets_proc.errors import InputError
from datasets_proc.split import split_rows

RED, GREEN = (255, 0, 0), (0, 255, 0)


def make_png(path: Path, color=RED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), color).save(path)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return path


def assert_canonical(rows, image_root: Path):
    """Every row valid, tags match images, every image exists under the root."""
    for row in rows:
        validate_row(row)
        images = row_images(row)
        assert sum(turn["value"].count(IMAGE_TAG) for turn in row["conversations"]) == len(images)
        for image in images:
            assert not Path(image).is_absolute()
            assert (image_root / image).is_file(), image
    assert_passes_data_check(rows, image_root)


def assert_passes_data_check(rows, image_root: Path):
    """The converter's output is kept whole by `vlmtune data check`."""
    import tempfile
    from vlmtune.data.check import check_file
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "converted.jsonl"
        write_jsonl(rows, path)
        report = check_file(path, image_root, progress=False)
    assert report.total == len(rows) and report.rejected == 0, report.summary()


def assert_counts_add_up(report):
    assert report.read == report.converted + report.skipped
    assert sum(report.reason_counts.values()) == report.skipped


# ---------------------------------------------------------------- FoodieQA


def foodie_record(**overrides):
    record = {
        "question": "图中的菜是哪个地区的特色？",
        "question_en": "Which region is the dish in the picture from?",
        "choices": ["四川", "广东", "北京", "上海"],
        "choices_en": ["Sichuan", "Guangdong", "Beijing", "Shanghai"],
        "answer": "1",
        "food_name": "白切鸡",
        "question_type": "region-2",
        "food_meta": {"food_file": "images/dish0.png", "food_location": "粤", "web_img": ""},
    }
    record.update(overrides)
    return record


@pytest.fixture
def foodie_dir(tmp_path):
    make_png(tmp_path / "foodie" / "images" / "dish0.png")
    records = [
        foodie_record(),
        foodie_record(answer=3, question_id="vqa-7"),
        foodie_record(answer="7"),
        foodie_record(choices=["四川", "广东", "北京"]),
        foodie_record(answer="B"),
        foodie_record(food_meta={"food_location": "粤"}),
        foodie_record(question="  "),
    ]
    write_json(tmp_path / "foodie" / "sivqa_tidy.json", records)
    return tmp_path / "foodie"


def test_foodieqa_choice_zh_exact_rows_and_rejects(foodie_dir):
    rows, report = foodieqa.convert(foodie_dir / "sivqa_tidy.json", "choice", "zh", foodie_dir)
    assert rows[0] == {
        "id": "foodieqa-0",
        "image": "images/dish0.png",
        "conversations": [
            {"from": "human", "value": "<image>\n图中的菜是哪个地区的特色？\n（A) 四川\n（B) 广东\n（C) 北京\n（D) 上海\n请直接回答选项字母。"},
            {"from": "gpt", "value": "B"},
        ],
    }
    assert rows[1]["id"] == "vqa-7" and rows[1]["conversations"][1]["value"] == "D"
    assert (report.read, report.converted, report.skipped) == (7, 2, 5)
    assert report.reason_counts == {
        "answer out of range": 1,
        "choices not a list of 4": 1,
        "answer not numeric": 1,
        "missing food_file": 1,
        "missing question": 1,
    }
    assert [entry["row"] for entry in report.rejected] == [2, 3, 4, 5, 6]
    assert_counts_add_up(report)
    assert_canonical(rows, foodie_dir)


def test_foodieqa_open_forms_zh_and_en(foodie_dir):
    rows, _ = foodieqa.convert(foodie_dir / "sivqa_tidy.json", "open", "zh")
    assert rows[0]["conversations"] == [
        {"from": "human", "value": "图中的菜是哪个地区的特色？\n<image>"},
        {"from": "gpt", "value": "广东，图中的菜是白切鸡"},
    ]
    rows, _ = foodieqa.convert(foodie_dir / "sivqa_tidy.json", "open", "en")
    assert rows[0]["conversations"] == [
        {"from": "human", "value": "Which region is the dish in the picture from?\n<image>"},
        {"from": "gpt", "value": "Guangdong. The dish in the picture is 白切鸡"},
    ]
    rows, _ = foodieqa.convert(foodie_dir / "sivqa_tidy.json", "choice", "en")
    assert rows[1]["conversations"][0]["value"] == (
        "<image>\nWhich region is the dish in the picture from?\n(A) Sichuan\n(B) Guangdong\n(C) Beijing\n"
        "(D) Shanghai\nAnswer with the option's letter directly."
    )


def test_foodieqa_answer_with_text_and_dish_named_once(foodie_dir, tmp_path):
    rows, _ = foodieqa.convert(foodie_dir / "sivqa_tidy.json", "choice", "en", answer_with="text")
    assert rows[0]["conversations"] == [
        {"from": "human", "value": "<image>\nWhich region is the dish in the picture from?\n(A) Sichuan\n"
                                   "(B) Guangdong\n(C) Beijing\n(D) Shanghai\nAnswer with the option's text directly."},
        {"from": "gpt", "value": "Guangdong"}]
    rows, _ = foodieqa.convert(foodie_dir / "sivqa_tidy.json", "choice", "zh", answer_with="text")
    assert rows[0]["conversations"][0]["value"].endswith("请直接回答选项内容。")
    assert rows[0]["conversations"][1]["value"] == "广东"
    # A "which dish" question, whose right choice is the dish itself: the open answer names it once.
    dish = foodie_record(question_en="Which dish is this?", choices_en=["noodles", "tofu", "fish", "rice"],
                         answer="2", food_name="fish")
    write_json(tmp_path / "dish.json", [dish])
    rows, _ = foodieqa.convert(tmp_path / "dish.json", "open", "en")
    assert rows[0]["conversations"][1] == {"from": "gpt", "value": "fish"}
    out = tmp_path / "cli.jsonl"
    assert main(["foodieqa", str(foodie_dir / "sivqa_tidy.json"), "-o", str(out), "--lang", "en",
                 "--answer-with", "text"]) == 0
    assert read_jsonl(out)[1]["conversations"][1]["value"] == "Shanghai"


def test_foodieqa_missing_image_file_is_rejected(foodie_dir):
    write_json(foodie_dir / "one.json", [foodie_record(food_meta={"food_file": "images/nope.png"})])
    rows, report = foodieqa.convert(foodie_dir / "one.json", image_root=foodie_dir)
    assert rows == [] and report.reason_counts == {"image file not found": 1}


def test_cli_foodieqa_writes_output_and_rejects(foodie_dir, tmp_path, capsys):
    out, rejects = tmp_path / "out" / "train.jsonl", tmp_path / "rejects.jsonl"
    code = main(["foodieqa", str(foodie_dir / "sivqa_tidy.json"), "-o", str(out), "--rejects", str(rejects),
                 "--image-root", str(foodie_dir), "--form", "open"])
    assert code == 0
    assert [row["id"] for row in read_jsonl(out)] == ["foodieqa-0", "vqa-7"]
    assert "白切鸡" in out.read_text(encoding="utf-8")  # ensure_ascii=False
    rejected = read_jsonl(rejects)
    assert [(entry["row"], entry["reason"]) for entry in rejected][:2] == [
        (2, "answer out of range"), (3, "choices not a list of 4")]
    assert rejected[0]["source"]["answer"] == "7"
    printed = capsys.readouterr().out
    assert "read 7, converted 2, skipped 5" in printed
    assert list(out.parent.glob(".*.tmp")) == []


# ---------------------------------------------------------------- LLaVA


def test_llava_json_and_internvl_jsonl(tmp_path):
    make_png(tmp_path / "images" / "a.png")
    make_png(tmp_path / "images" / "b.png", GREEN)
    write_json(tmp_path / "llava.json", [
        {"id": "l0", "image": "./images/a.png", "width": 8, "height": 8, "conversations": [
            {"from": "human", "value": "  What is shown?  "}, {"from": "gpt", "value": "A red square. "}]},
        {"id": "l1", "image": "images/a.png", "conversations": [
            {"from": "human", "value": "<image><image> two?"}, {"from": "gpt", "value": "x"}]},
        {"id": "l2", "conversations": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Hello"}]},
        {"id": "l3", "image": "images/a.png", "conversations": [{"from": "gpt", "value": "<image>x"}]},
        {"id": "l4", "image": "images/a.png", "conversations": [
            {"from": "human", "value": "Q"}, {"from": "gpt", "value": "<image> A"}]},
    ])
    rows, report = llava.convert(tmp_path / "llava.json", tmp_path)
    assert rows[0] == {
        "id": "l0", "image": "images/a.png", "width": 8, "height": 8,
        "conversations": [{"from": "human", "value": "<image>\nWhat is shown?"},
                          {"from": "gpt", "value": "A red square."}],
    }
    assert rows[1] == {"id": "l2", "conversations": [{"from": "human", "value": "Hi"},
                                                     {"from": "gpt", "value": "Hello"}]}
    assert report.reason_counts == {"image tag count mismatch": 1, "roles do not alternate": 1,
                                    "image tag outside human turn": 1}
    assert_counts_add_up(report)

    lines = [
        {"id": "iv0", "image": ["images/a.png", "images/b.png"], "width": [8, 8], "height": [8, 8],
         "conversations": [{"from": "human", "value": "Image-1: <image>\nImage-2: <image>\nCompare."},
                           {"from": "gpt", "value": "Different colours."}]},
        {"id": "iv1", "image": ["images/missing.png"], "conversations": [
            {"from": "human", "value": "<image>"}, {"from": "gpt", "value": "?"}]},
    ]
    (tmp_path / "internvl.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    rows, report = llava.convert(tmp_path / "internvl.jsonl", tmp_path)
    assert rows == [{**lines[0]}]
    assert report.rejected[0]["row"] == 1 and report.rejected[0]["reason"] == "image file not found"
    assert_canonical(rows, tmp_path)


def test_cli_bad_json_exits_2_naming_file_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "conversations": []}\n{"id": oops}\n')
    assert main(["llava", str(bad), "-o", str(tmp_path / "out.jsonl")]) == 2
    message = capsys.readouterr().err.strip()
    assert message.count("\n") == 0 and str(bad) in message and "line 2" in message
    assert main(["llava", str(tmp_path / "absent.json"), "-o", str(tmp_path / "out.jsonl")]) == 2
    assert not (tmp_path / "out.jsonl").exists()


# ---------------------------------------------------------------- ShareGPT


def test_sharegpt_messages_parts_and_classic(tmp_path):
    make_png(tmp_path / "images" / "a.png")
    make_png(tmp_path / "images" / "b.png", GREEN)
    write_json(tmp_path / "chat.json", [
        {"id": "s0", "images": ["images/a.png"], "messages": [
            {"role": "system", "content": "You are a food expert."},
            {"role": "user", "content": "<image>What dish is this?"},
            {"role": "assistant", "content": "Mapo tofu."}]},
        {"messages": [
            {"role": "user", "content": [{"type": "text", "text": "Compare"},
                                         {"type": "image", "image": "images/a.png"},
                                         {"type": "image_url", "image_url": {"url": "images/b.png"}}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Red, then green."}]}]},
        {"conversations": [{"from": "human", "value": "Describe."}, {"from": "gpt", "value": "Green."}],
         "images": ["images/b.png"]},
        {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]},
                      {"role": "assistant", "content": "Red."}], "images": ["images/a.png"]},
        {"messages": [{"role": "tool", "content": "x"}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "https://x/y.png"}]},
                      {"role": "assistant", "content": "z"}]},
        {"messages": [{"role": "user", "content": "<image> one"}, {"role": "assistant", "content": "y"}],
         "images": ["images/a.png", "images/b.png"]},
    ])
    rows, report = sharegpt.convert(tmp_path / "chat.json", tmp_path)
    assert rows == [
        {"id": "s0", "image": "images/a.png", "conversations": [
            {"from": "system", "value": "You are a food expert."},
            {"from": "human", "value": "<image>What dish is this?"},
            {"from": "gpt", "value": "Mapo tofu."}]},
        {"id": "sharegpt-1", "image": ["images/a.png", "images/b.png"], "conversations": [
            {"from": "human", "value": "Compare\n<image>\n<image>"},
            {"from": "gpt", "value": "Red, then green."}]},
        {"id": "sharegpt-2", "image": "images/b.png", "conversations": [
            {"from": "human", "value": "<image>\nDescribe."}, {"from": "gpt", "value": "Green."}]},
        {"id": "sharegpt-3", "image": "images/a.png", "conversations": [
            {"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Red."}]},
    ]
    assert [(entry["row"], entry["reason"]) for entry in report.rejected] == [
        (4, "unknown role"), (5, "remote image url not supported"), (6, "image tag count mismatch")]
    assert_counts_add_up(report)
    assert_canonical(rows, tmp_path)


# ---------------------------------------------------------------- CSV


def write_csv(path: Path, header, rows) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_with_options_and_without(tmp_path):
    make_png(tmp_path / "imgs" / "a.png")
    make_png(tmp_path / "imgs" / "b.png", GREEN)
    with_options = write_csv(tmp_path / "mc.csv", ["id", "image", "question", "answer", "options"], [
        ["c0", "a.png", "Which colour?", "(B)", "red|green|blue"],
        ["", "b.png", "Which colour?", "green", '["red", "green"]'],
        ["c2", "a.png", "Which colour?", "E", "red|green"],
        ["c3", "", "Which colour?", "A", "red|green"],
        ["c4", "a.png", "Which colour?", "purple", "red|green"],
        ["c5", "a.png", "Open question?", "Red", ""],
    ])
    rows, report = csv_folder.convert(with_options, tmp_path / "imgs")
    assert rows[0] == {"id": "c0", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nWhich colour?\n(A) red\n(B) green\n(C) blue\n"
                                   "Answer with the option's letter directly."},
        {"from": "gpt", "value": "B"}]}
    assert rows[1]["id"] == "csv-1" and rows[1]["conversations"][1] == {"from": "gpt", "value": "B"}
    assert rows[2] == {"id": "c5", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nOpen question?"}, {"from": "gpt", "value": "Red"}]}
    assert report.reason_counts == {"answer out of range": 1, "missing image": 1, "answer not among options": 1}
    assert_counts_add_up(report)
    assert_canonical(rows, tmp_path / "imgs")

    plain = write_csv(tmp_path / "plain.csv", ["image", "question", "answer"], [["a.png", "What colour is it?", "Red"]])
    rows, report = csv_folder.convert(plain, tmp_path / "imgs")
    assert rows == [{"id": "csv-0", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is it?"}, {"from": "gpt", "value": "Red"}]}]


def test_csv_answer_with_text(tmp_path):
    make_png(tmp_path / "imgs" / "a.png")
    path = write_csv(tmp_path / "mc.csv", ["image", "question", "answer", "options"],
                     [["a.png", "Which colour?", "B", "red|green|blue"], ["a.png", "Which colour?", "blue", "red|blue"]])
    rows, report = csv_folder.convert(path, tmp_path / "imgs", answer_with="text")
    assert [r["conversations"][1]["value"] for r in rows] == ["green", "blue"]
    assert rows[0]["conversations"][0]["value"].endswith("(C) blue\nAnswer with the option's text directly.")
    assert report.skipped == 0
    with pytest.raises(ValueError, match="answer_with"):
        csv_folder.convert(path, tmp_path / "imgs", answer_with="number")


def test_cli_csv_missing_column_exits_2(tmp_path, capsys):
    bad = write_csv(tmp_path / "bad.csv", ["image", "prompt"], [["a.png", "x"]])
    assert main(["csv", str(bad), "-o", str(tmp_path / "out.jsonl")]) == 2
    message = capsys.readouterr().err
    assert str(bad) in message and "question" in message and "answer" in message


# ---------------------------------------------------------------- HF datasets / parquet


def test_hf_saved_dataset_with_image_feature(tmp_path):
    import datasets

    features = datasets.Features({
        "id": datasets.Value("string"), "image": datasets.Image(), "question": datasets.Value("string"),
        "answer": datasets.Value("string"), "options": datasets.Sequence(datasets.Value("string")),
    })
    data = {
        "id": ["h0", "h/1", "h2"],
        "image": [Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), GREEN), Image.new("RGB", (8, 8), RED)],
        "question": ["Which colour?", "What colour?", "Which colour?"],
        "answer": ["red", "Green", "purple"],
        "options": [["red", "green"], [], ["red", "green"]],
    }
    datasets.Dataset.from_dict(data, features=features).save_to_disk(str(tmp_path / "ds"))

    with pytest.raises(InputError, match="--image-out"):
        hf_dataset.convert(tmp_path / "ds")
    rows, report = hf_dataset.convert(tmp_path / "ds", image_out=tmp_path / "data" / "hf", image_root=tmp_path / "data")
    assert rows[0] == {"id": "h0", "image": "hf/h0.png", "conversations": [
        {"from": "human", "value": "<image>\nWhich colour?\n(A) red\n(B) green\nAnswer with the option's letter directly."},
        {"from": "gpt", "value": "A"}]}
    assert rows[1]["image"].startswith("hf/h_1-") and rows[1]["conversations"][1]["value"] == "Green"
    assert report.reason_counts == {"answer not among options": 1}
    assert_counts_add_up(report)
    assert_canonical(rows, tmp_path / "data")
    # The rejected row's image is not left behind.
    assert sorted(path.name for path in (tmp_path / "data" / "hf").iterdir()) == sorted(
        Path(row["image"]).name for row in rows)
    with Image.open(tmp_path / "data" / rows[1]["image"]) as written:
        assert written.convert("RGB").getpixel((0, 0)) == GREEN


def test_hf_parquet_with_conversations_and_path_column(tmp_path):
    import datasets

    make_png(tmp_path / "root" / "pics" / "p.png")
    features = datasets.Features({
        "image": datasets.Image(),
        "conversations": [{"from": datasets.Value("string"), "value": datasets.Value("string")}],
    })
    chats = [[{"from": "human", "value": "Colour?"}, {"from": "gpt", "value": "Green."}],
             [{"from": "human", "value": "<image><image>"}, {"from": "gpt", "value": "x"}]]
    images = [Image.new("RGB", (8, 8), GREEN), Image.new("RGB", (8, 8), RED)]
    datasets.Dataset.from_dict({"image": images, "conversations": chats}, features=features).to_parquet(
        str(tmp_path / "train.parquet"))
    rows, report = hf_dataset.convert(tmp_path / "train.parquet", image_out=tmp_path / "out_images")
    assert rows == [{"id": "hf-0", "image": "hf-0.png", "conversations": [
        {"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": "Green."}]}]
    assert report.reason_counts == {"image tag count mismatch": 1}
    assert_canonical(rows, tmp_path / "out_images")

    # Path strings (no bytes) resolve against the image root, no --image-out needed.
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["p0"], "image": ["pics/p.png"], "question": ["What?"], "answer": ["A dot"]}),
                   tmp_path / "paths.parquet")
    out = tmp_path / "paths.jsonl"
    assert main(["hf", str(tmp_path / "paths.parquet"), "-o", str(out), "--image-root", str(tmp_path / "root")]) == 0
    assert read_jsonl(out) == [{"id": "p0", "image": "pics/p.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat?"}, {"from": "gpt", "value": "A dot"}]}]


# ---------------------------------------------------------------- split and writing


def canonical_rows(n: int) -> list[dict]:
    # Rows 2k and 2k+1 share an image, so grouping by image must keep pairs together.
    return [{"id": f"r{i}", "image": f"img{i // 2}.png", "conversations": [
        {"from": "human", "value": f"<image>\nq{i}"}, {"from": "gpt", "value": f"a{i}"}]} for i in range(n)]


def test_split_deterministic_disjoint_and_grouped(tmp_path):
    rows = canonical_rows(20)
    train, val, report = split_rows(rows, val_count=5, seed=3)
    again_train, again_val, _ = split_rows(rows, val_count=5, seed=3)
    assert (train, val) == (again_train, again_val)
    assert len(val) == 5 and len(train) == 15 and (report.train, report.val) == (15, 5)
    train_ids, val_ids = {row["id"] for row in train}, {row["id"] for row in val}
    assert not train_ids & val_ids and train_ids | val_ids == {row["id"] for row in rows}
    other_seeds = [[row["id"] for row in split_rows(rows, val_count=5, seed=s)[1]] for s in range(4, 9)]
    assert any(ids != [row["id"] for row in val] for ids in other_seeds)

    train, val, report = split_rows(rows, val_ratio=0.25, seed=1, group_by_image=True)
    assert report.groups == 10 and len(val) == 6 and len(train) == 14
    assert not {row["image"] for row in train} & {row["image"] for row in val}

    source = tmp_path / "all.jsonl"
    write_jsonl(rows, source)
    args = ["split", str(source), "-o", str(tmp_path / "t.jsonl"), "--val-output", str(tmp_path / "v.jsonl"),
            "--val-ratio", "0.2", "--seed", "7"]
    assert main(args) == 0
    first = (read_jsonl(tmp_path / "t.jsonl"), read_jsonl(tmp_path / "v.jsonl"))
    assert main(args) == 0
    assert first == (read_jsonl(tmp_path / "t.jsonl"), read_jsonl(tmp_path / "v.jsonl"))
    assert len(first[1]) == 4


def test_never_overwrites_an_input(tmp_path, foodie_dir):
    source = foodie_dir / "sivqa_tidy.json"
    before = source.read_bytes()
    with pytest.raises(InputError, match="refusing to overwrite"):
        write_jsonl([{"id": "x"}], source, inputs=[source])
    assert main(["foodieqa", str(source), "-o", str(source)]) == 2
    assert main(["foodieqa", str(source), "-o", str(tmp_path / "ok.jsonl"), "--rejects", str(source)]) == 2
    canonical = tmp_path / "c.jsonl"
    write_jsonl(canonical_rows(4), canonical)
    assert main(["split", str(canonical), "-o", str(canonical), "--val-output", str(tmp_path / "v.jsonl"),
                 "--val-count", "1"]) == 2
    assert source.read_bytes() == before
    assert read_jsonl(canonical) == canonical_rows(4)
