"""The ``jax-trainer`` command (also ``python -m jax_trainer``).

Each subcommand is one entry of ``COMMANDS``: name -> (help, add_arguments(parser), run(args) -> exit code).
Bad input exits non-zero with a one-paragraph message; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Callable

from jax_trainer.config_errors import ConfigError  # not jax_trainer.config: `--help` must not import jax
from jax_trainer.cpu_threads import limit_cpu_threads
from jax_trainer.errors import InputError, Interrupted

# Errors that describe bad input (config, files, checkpoints, data) rather than a bug in jax_trainer.
USER_ERRORS = (InputError,)
EXIT_INPUT, EXIT_IO = 2, 74  # 74: EX_IOERR of sysexits.h; a signal exits with 128 + its number


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _add_cpu_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cpu-threads",
        type=_positive_int,
        default=None,
        metavar="N",
        help="XLA CPU compute threads (default: one per core); see README, Performance, for when 1 is faster",
    )


def _add_config_arguments(parser: argparse.ArgumentParser, ckpt_required: bool) -> None:
    parser.add_argument("config", help="YAML config file")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, typed by the schema")
    parser.add_argument(
        "--ckpt-path", required=ckpt_required, default=None, help="'last' or a checkpoint directory to start from"
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config as YAML and exit")
    _add_cpu_threads_argument(parser)


def _load(args) -> object | None:
    """The resolved config, or None after printing it for ``--print-config``."""
    from jax_trainer.config import dump_yaml, load_config  # pylint: disable=import-outside-toplevel  (imports jax)

    config = load_config(args.config, args.overrides)
    if args.print_config:
        print(dump_yaml(config), end="")
        return None
    return config


def _fit(args) -> int:
    from jax_trainer import run

    config = _load(args)
    if config is not None:
        _print_results(run.fit(config, ckpt_path=args.ckpt_path))
        print(f"jax-trainer fit: {run.where(config)}", file=sys.stderr)
    return 0


def _evaluate(mode: str) -> Callable[[argparse.Namespace], int]:
    def evaluate(args) -> int:
        from jax_trainer import run

        config = _load(args)
        if config is not None:
            _print_results({mode: run.evaluate(config, mode, args.ckpt_path)})
        return 0

    return evaluate


# jax_trainer.bench.STEPS and ROUNDS, repeated for the help text: importing jax_trainer.bench imports jax, and
# `--help` must not (tests/core/test_tune.py checks that the two agree).
BENCH_STEPS, BENCH_ROUNDS = 8000, 16


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="YAML config of a classifier (default: MLP on digits)")
    parser.add_argument("overrides", nargs="*", help="dotted.key=value overrides, typed by the schema")
    parser.add_argument("--steps", type=int, default=None, help=f"timed steps per variant (default {BENCH_STEPS})")
    parser.add_argument(
        "--rounds", type=int, default=None, help=f"interleaved rounds the steps are split into (default {BENCH_ROUNDS})"
    )
    parser.add_argument("--json", default=None, metavar="FILE", help="also write steps/s and the machine as JSON")
    parser.add_argument(
        "--first-step-rounds",
        type=int,
        default=1,
        metavar="N",
        help="fresh processes per loop timed from process start to first step (median; 0: skip; default 1)",
    )
    _add_cpu_threads_argument(parser)


def _bench(args) -> int:
    from jax_trainer import bench

    steps = bench.STEPS if args.steps is None else args.steps
    rounds = bench.ROUNDS if args.rounds is None else args.rounds
    bench.run_cli(args.config, args.overrides, steps, rounds, args.json, args.first_step_rounds)
    return 0


def _migrate_arguments(parser: argparse.ArgumentParser) -> None:
    from jax_trainer.migrate import command

    command.add_arguments(parser)


def _migrate(args) -> int:
    from jax_trainer.migrate import command

    return command.run(args)


def _tune_arguments(parser: argparse.ArgumentParser) -> None:
    from jax_trainer.tune import command  # pylint: disable=import-outside-toplevel

    command.add_arguments(parser)
    _add_cpu_threads_argument(parser)


def _tune(args) -> int:
    from jax_trainer.tune import command  # pylint: disable=import-outside-toplevel

    return command.run(args)


def _predict_arguments(parser: argparse.ArgumentParser) -> None:
    _add_config_arguments(parser, ckpt_required=True)
    parser.add_argument("--split", choices=("test", "val", "train"), default="test", help="which split (default test)")
    parser.add_argument("--out", required=True, metavar="FILE.npz", help="where to write outputs (and targets)")


def _predict(args) -> int:
    from jax_trainer import run

    config = _load(args)
    if config is not None:
        print(run.predict(config, args.ckpt_path, args.split, args.out))
    return 0


def _summary(args) -> int:
    from jax_trainer import run

    config = _load(args)
    if config is not None:
        print(run.summary(config))
    return 0


def _shards_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("npz", help="an .npz file with x_train, y_train and optionally x_val, y_val, x_test, y_test")
    parser.add_argument("out_dir", help="an empty folder for the .npy shards (NpyShardsDataset's data_dir)")
    parser.add_argument("--rows-per-shard", type=_positive_int, default=None, metavar="N", help="default: ~1 GiB")


def _shards(args) -> int:
    from jax_trainer.datasets.npy_shards import shards_from_npz

    print(f"wrote {len(shards_from_npz(args.npz, args.out_dir, args.rows_per_shard))} files to {args.out_dir}")
    return 0


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {
    "fit": ("train from a YAML config", lambda p: _add_config_arguments(p, ckpt_required=False), _fit),
    "validate": (
        "evaluate a checkpoint on the validation split",
        lambda p: _add_config_arguments(p, ckpt_required=True),
        _evaluate("val"),
    ),
    "test": (
        "evaluate a checkpoint on the test split",
        lambda p: _add_config_arguments(p, ckpt_required=True),
        _evaluate("test"),
    ),
    "predict": ("write a checkpoint's outputs on a split to an .npz file", _predict_arguments, _predict),
    "summary": (
        "the model's parameters by path, counts, bytes per device",
        lambda p: _add_config_arguments(p, ckpt_required=False),
        _summary,
    ),
    "bench": ("steps/s of the trainer (linen, nnx) against hand-written jax.jit loops", _bench_arguments, _bench),
    "migrate": ("convert a linen run's checkpoint for an nnx model, check parity", _migrate_arguments, _migrate),
    "tune": ("hyperparameter search with optuna from the config's tune: section", _tune_arguments, _tune),
    "shards": ("write an .npz file's arrays as .npy shards for NpyShardsDataset", _shards_arguments, _shards),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jax-trainer", description="Lightning-like training for JAX (linen and nnx).")
    parser.add_argument("--debug", "--traceback", dest="debug", action="store_true", help="show full tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_arguments, _) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(cmd)
        # SUPPRESS: an unset sub-command flag must not overwrite `jax-trainer --debug fit ...`.
        cmd.add_argument(
            "--debug", "--traceback", dest="debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks"
        )
    return parser


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``key=value`` overrides may also follow a flag (``fit c.yaml --ckpt-path last a=1``), which
    argparse alone refuses for a positional list after an option."""
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    late = [item for item in rest if "=" in item and not item.startswith("-")]
    if rest != late or (late and not isinstance(getattr(args, "overrides", None), list)):
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if late:
        args.overrides = [*args.overrides, *late]
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    # The console gets the run's log lines from the first one (the model summary, epoch 1): without a handler of
    # its own, logging's default one appears only once some library logs through the root logger.
    logging.basicConfig(format="%(levelname)s:%(name)s:%(message)s")
    if os.getcwd() not in sys.path:  # `imports:` resolve from the current directory, as with `python -m`
        sys.path.insert(0, os.getcwd())
    try:
        if getattr(args, "cpu_threads", None) is not None:  # before anything starts jax's backends
            limit_cpu_threads(args.cpu_threads)
        return COMMANDS[args.command][2](args)
    except Interrupted as stop:
        print(f"jax-trainer {args.command}: {stop}", file=sys.stderr)
        return stop.exit_code
    except (*USER_ERRORS, OSError) as err:
        if args.debug:
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        if isinstance(err, OSError) and not isinstance(err, InputError):
            print(f"jax-trainer {args.command}: I/O error: {message} (--debug for the traceback)", file=sys.stderr)
            return EXIT_IO
        if not isinstance(err, ConfigError):
            message = f"{type(err).__name__}: {message} (run with --debug for the traceback)"
        print(f"jax-trainer {args.command}: error: {message}", file=sys.stderr)
        return EXIT_INPUT


def _print_results(results: dict) -> None:
    from jax_trainer.logger.tools.base import jsonable  # pylint: disable=import-outside-toplevel

    print(json.dumps(jsonable(results), indent=2))


if __name__ == "__main__":
    sys.exit(main())
