"""accumulate_grad_batches under the nnx backend: 4 x 16 examples == one batch of 64."""

import pytest
from grad_accum_scenario import OPTIMIZERS, check_accumulation_matches_big_batch


@pytest.mark.parametrize("optimizer_name", sorted(OPTIMIZERS))
def test_grad_accumulation_matches_big_batch_nnx(optimizer_name, tmp_path):
    check_accumulation_matches_big_batch("nnx", optimizer_name, tmp_path)
