"""Scratch tensors: reused inside `reuse_scratch` (per thread, per name), fresh outside it."""

from __future__ import annotations

import threading

import torch

from hierspeech.modules.scratch import reuse_scratch, scratch, scratch_elements


def test_outside_reuse_every_request_is_a_new_tensor() -> None:
    like = torch.zeros(1)
    assert scratch_elements("a", 10, like).data_ptr() != scratch_elements("a", 10, like).data_ptr()
    assert scratch("b", (2, 3), like).data_ptr() != scratch("b", (2, 3), like).data_ptr()


def test_scratch_elements_share_one_storage_that_grows_to_the_largest_request() -> None:
    like = torch.zeros(1, dtype=torch.float64)
    with reuse_scratch():
        first = scratch_elements("buffer", 100, like)
        assert first.shape == (100,) and first.dtype == torch.float64
        smaller = scratch_elements("buffer", 40, like)
        assert smaller.shape == (40,) and smaller.data_ptr() == first.data_ptr()
        larger = scratch_elements("buffer", 300, like)
        assert larger.shape == (300,)
        again = scratch_elements("buffer", 100, like)
        assert again.data_ptr() == larger.data_ptr()  # kept at the largest size, not shrunk
        other = scratch_elements("other", 100, like)
        assert other.data_ptr() != again.data_ptr()  # names never share
        assert scratch_elements("buffer", 100, torch.zeros(1)).data_ptr() != again.data_ptr()  # nor dtypes
    after = scratch_elements("buffer", 100, like)
    assert after.data_ptr() != again.data_ptr()  # the pool ended with the block


def test_shaped_scratch_views_the_same_storage() -> None:
    like = torch.zeros(1)
    with reuse_scratch():
        big = scratch("shaped", (4, 5), like)
        assert big.shape == (4, 5)
        small = scratch("shaped", (3, 2), like)
        assert small.shape == (3, 2) and small.data_ptr() == big.data_ptr()
        small.fill_(7.0)
        assert (big.flatten()[:6] == 7.0).all()  # a view of the one storage, not a copy


def test_pools_are_per_thread() -> None:
    like = torch.zeros(1)
    seen: dict[str, int] = {}

    def worker() -> None:
        with reuse_scratch():
            seen["thread"] = scratch_elements("buffer", 1000, like).data_ptr()
            seen["thread_again"] = scratch_elements("buffer", 1000, like).data_ptr()

    with reuse_scratch():
        mine = scratch_elements("buffer", 1000, like)
        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
        assert seen["thread"] == seen["thread_again"]
        assert seen["thread"] != mine.data_ptr()
        assert scratch_elements("buffer", 1000, like).data_ptr() == mine.data_ptr()
