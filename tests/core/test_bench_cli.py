"""``jax-trainer bench``: a quick run prints the comparison table and writes steps/s per variant as JSON."""

import json

import yaml

from jax_trainer import bench, cli

TINY = {
    "trainer": {"class_name": "ImgClassifierTrainer", "enable_progress_bar": True, "logger": {"log_steps_every": 5}},
    "model": {"class_name": "MLPClassifier", "hidden_dims": [16], "num_classes": 10},
    "optimizer": {"class_name": "AdamW", "learning_rate": 1.0e-3},
    "dataset": {"class_name": "DigitsDataset", "global_batch_size": 64, "val_size": 0.15},
}


def test_quick_bench_writes_every_variant(tmp_path, capsys):
    config, out = tmp_path / "tiny.yaml", tmp_path / "bench.json"
    config.write_text(yaml.safe_dump(TINY))
    assert cli.main(["bench", str(config), "--steps", "4", "--rounds", "1", "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert set(results) == set(bench.VARIANTS) | {"machine"}
    assert all(results[v] > 0 for v in bench.VARIANTS)
    assert results["machine"]["cores"] >= 1 and results["machine"]["jax"]
    table = capsys.readouterr().out
    assert all(v in table for v in bench.VARIANTS) and "× raw_linen" in table


def test_bench_refuses_a_non_classification_config(tmp_path, capsys):
    config = tmp_path / "regression.yaml"
    regression = {**TINY, "trainer": {"class_name": "RegressionTrainer"}, "dataset": {"class_name": "DiabetesDataset"}}
    config.write_text(yaml.safe_dump(regression))
    assert cli.main(["bench", str(config), "--steps", "4"]) == 2
    assert "ImgClassifierTrainer" in capsys.readouterr().err
