"""The ``jax-trainer`` command: fit, validate, test, bench, migrate."""

from __future__ import annotations

import argparse
import json
import sys

from jax_trainer.config import ConfigError, dump_yaml, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jax-trainer", description="Lightning-like training for JAX (linen and nnx).")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("fit", "train from a YAML config"),
        ("validate", "evaluate a checkpoint on the validation split"),
        ("test", "evaluate a checkpoint on the test split"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("config", help="YAML config file")
        cmd.add_argument("overrides", nargs="*", help="dotted.key=value overrides, typed by the schema")
        cmd.add_argument("--ckpt-path", default=None, help="'last' or a checkpoint directory")
        cmd.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
        cmd.add_argument("--debug", action="store_true", help="show full tracebacks")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ConfigError, ValueError, FileNotFoundError, TypeError, ImportError, FloatingPointError) as err:
        if args.debug:
            raise
        print(f"jax-trainer {args.command}: error: {err}", file=sys.stderr)
        return 2


def _dispatch(args) -> int:
    from jax_trainer import run

    config = load_config(args.config, args.overrides)
    if args.print_config:
        print(dump_yaml(config), end="")
        return 0
    if args.command == "fit":
        results = run.fit(config, ckpt_path=args.ckpt_path)
    else:
        results = run.evaluate(config, "val" if args.command == "validate" else "test", args.ckpt_path)
    print(json.dumps(_jsonable(results), indent=2))
    return 0


def _jsonable(results: dict) -> dict:
    return {str(k): ({m: float(v) for m, v in d.items()} if isinstance(d, dict) else d) for k, d in results.items()}


if __name__ == "__main__":
    sys.exit(main())
