"""Config: unknown keys name the key and suggest a fix; overrides and per-dataset layering."""

import pytest

from modalrec.api import make_config
from modalrec.cli.main import main
from modalrec.errors import ConfigError


def test_unknown_key_suggests():
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epoch'.*did you mean train.epochs"):
        make_config("lightgcn", overrides={"train.epoch": 3})


def test_unknown_model_param_suggests(tiny):
    from modalrec.models.registry import resolve_params

    with pytest.raises(ConfigError, match=r"params.n_layer'.*params.n_layers"):
        resolve_params("lightgcn", tiny.name, {"n_layer": 2})


def test_priority_file_dataset_cli(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 0.01\n  epochs: 5\nper_dataset:\n  lfm2k:\n    train.lr: 0.002\n")
    assert make_config(config=f).train.lr == 0.01
    assert make_config(config=f, dataset_name="lfm2k").train.lr == 0.002
    assert make_config(config=f, dataset_name="lfm2k", overrides=["train.lr=0.003"]).train.lr == 0.003


def test_cli_unknown_key_exit_2(capsys):
    assert main(["train", "lightgcn", "--data", "synthetic:tiny", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "did you mean train.epochs" in err and err.count("\n") == 1
