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
    argv = ["bench", str(config), "--steps", "4", "--rounds", "1", "--first-step-rounds", "0", "--json", str(out)]
    assert cli.main(argv) == 0
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


def test_first_step_is_timed_from_a_fresh_process(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(TINY))
    seconds = bench.process_first_step(str(config), ("trainer.logger.log_steps_every=1",), "trainer_nnx")
    assert 0 < seconds < 120
    results = {v: 1.0 for v in bench.VARIANTS} | {"first_epoch_s": {}, "process_first_step_s": {"trainer_nnx": seconds}}
    assert "start→1st step s" in bench.format_table(results, "tiny")
