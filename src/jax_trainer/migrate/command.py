"""``jax-trainer migrate LINEN_RUN_DIR --out DIR [--model NNX_MODEL_CONFIG] [--rules RULES]``.

Converts the linen run's checkpoint for the nnx model (see ``migrate/convert.py``), prints the parity
report as JSON and exits non-zero when an output differs by more than ``--tolerance``.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("linen_run", help="run directory (or one checkpoint) of a run trained with model_mode linen")
    parser.add_argument("--out", required=True, help="run directory to create for the nnx model")
    parser.add_argument(
        "--model", default=None, help="YAML with the nnx model config (a `model:` block); default: the run's model"
    )
    parser.add_argument("--rules", default=None, help="YAML rename rules (regex: replacement) for parameter paths")
    parser.add_argument("--ckpt-path", default="last", help="checkpoint of the linen run to convert (default: last)")
    parser.add_argument("--weights-only", action="store_true", help="convert parameters and batch stats only")
    parser.add_argument("--tolerance", type=float, default=1e-5, help="largest output difference accepted")


def run(args: argparse.Namespace) -> int:
    from jax_trainer.migrate.convert import load_rules, migrate_run, read_model_config

    model = read_model_config(args.model) if args.model else None
    result = migrate_run(
        args.linen_run,
        args.out,
        model=model,
        rules=load_rules(args.rules),
        ckpt_path=args.ckpt_path,
        weights_only=args.weights_only,
        tolerance=args.tolerance,
    )
    print(json.dumps(result.report(), indent=2))
    parity = result.parity
    if not parity["passed"]:
        print(
            f"jax-trainer migrate: outputs differ by more than {parity['tolerance']:g} "
            f"(eval {parity['eval']:.3g}, train {parity['train']:.3g}); the nnx model is not an exact port.",
            file=sys.stderr,
        )
        return 1
    return 0
