"""`vlmtune train` rejects bad inputs with one line, before any heavy work (no subprocess starts)."""
import pytest

from helpers.training import RECIPE
from vlmtune.cli import main as cli_main
from vlmtune.engine import launch


@pytest.fixture
def no_launch(monkeypatch):
    calls = []
    monkeypatch.setattr(launch, 'run_quietly', lambda cmd, env, work_dir: calls.append(cmd) or 0)
    return calls


def one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    return err


def test_missing_checkpoint_folder(ws, tmp_path, no_launch, capsys):
    code = cli_main(['train', str(RECIPE), '--checkpoint', str(tmp_path / 'nope'), '--data', str(ws['data']),
                     '--images', str(ws['images'])])
    assert code == 2 and not no_launch
    assert 'checkpoint folder' in one_error_line(capsys)


def test_missing_dataset(ws, tmp_path, no_launch, capsys):
    code = cli_main(['train', str(RECIPE), '--checkpoint', str(ws['folder']), '--data', str(tmp_path / 'x.jsonl')])
    assert code == 2 and not no_launch
    assert 'dataset file' in one_error_line(capsys)


def test_unknown_trainability_value(ws, no_launch, capsys):
    code = cli_main(['train', str(RECIPE), '--checkpoint', str(ws['folder']), '--data', str(ws['data']),
                     '--images', str(ws['images']), '--cfg-options', 'model.llm=qlora'])
    assert code == 2 and not no_launch
    assert "llm='qlora' is not a trainability mode" in one_error_line(capsys)


def test_unknown_deepspeed_name_and_good_launch(ws, no_launch, capsys):
    args = ['train', str(RECIPE), '--checkpoint', str(ws['folder']), '--data', str(ws['data']),
            '--images', str(ws['images'])]
    assert cli_main(args + ['--deepspeed', 'zero9']) == 2 and not no_launch
    assert 'zero2' in one_error_line(capsys)
    assert cli_main(args + ['--deepspeed', 'zero2']) == 0
    assert no_launch and 'vlmtune.engine.xtuner_main' in no_launch[0] and any('zero2_cpu.json' in a for a in no_launch[0])


def test_a_model_source_option_sets_the_datasets_too():
    options = launch.with_dataset_mirrors(['model.parts.vision_tower.pretrained=/v', 'model.checkpoint=/c',
                                           'train_dataloader.dataset.checkpoint=/own', 'model.llm=full'])
    assert 'train_dataloader.dataset.parts.vision_tower.pretrained=/v' in options
    assert 'train_dataloader.dataset.checkpoint=/own' in options and 'train_dataloader.dataset.checkpoint=/c' not in options
    assert not any(o.startswith('train_dataloader.dataset.llm') for o in options)   # trainability is the model's alone


def test_a_llava_folder_given_to_an_internvl_recipe_names_the_recipes_that_fit(ws, tmp_path, no_launch, capsys):
    from vlmtune.tiny import TinyLlavaSpec, make_tiny_llava_folder
    llava = make_tiny_llava_folder(tmp_path / 'llava', TinyLlavaSpec(image_size=56))
    code = cli_main(['train', str(RECIPE), '--checkpoint', str(llava), '--data', str(ws['data']),
                     '--images', str(ws['images'])])
    assert code == 2 and not no_launch
    err = one_error_line(capsys)
    assert 'is a llava_hf folder (clip + mlp2x_gelu + llama' in err and 'vlmtune list-cfg llava' in err
