"""Step-loop contracts (compile counts, steps_per_dispatch) under the linen backend."""

import loop_scenarios as sc

MODE = "linen"


def test_steps_compile_once(tmp_path):
    sc.steps_compile_once(MODE, tmp_path)


def test_dispatch_compiles_once_per_shape(tmp_path):
    sc.dispatch_compiles_once_per_shape(MODE, tmp_path)


def test_dispatch_matches_single_steps(tmp_path):
    sc.dispatch_matches_single_steps(MODE, tmp_path)


def test_compilation_cache_is_used(tmp_path):
    sc.compilation_cache_is_used(MODE, tmp_path)
