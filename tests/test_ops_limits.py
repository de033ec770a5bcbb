"""The GPU kernels' 32-bit addressing limit is checked before any launch (meta tensors: no memory needed)."""

import pytest
import torch

from lrgen.errors import LrgenError
from lrgen.ops.limits import MAX_ELEMENTS, check_addressable, extent


def test_extent_counts_the_span_of_strided_views():
    wide = torch.empty(2, 10, 8, device="meta")
    assert extent(wide) == 160
    assert extent(wide[..., 4:]) == 1 + 1 * 80 + 9 * 8 + 3  # half of the channels spans almost the whole tensor
    assert extent(torch.empty(0, 5, device="meta")) == 0


def test_too_large_for_32_bit_offsets_is_one_line():
    check_addressable("scan", torch.empty(1, MAX_ELEMENTS, device="meta"), None)
    with pytest.raises(LrgenError, match=r"scan: a tensor of shape \(1, 1048576, 2048\) spans 2,147,483,648"):
        check_addressable("scan", torch.empty(1, 1 << 20, 2048, device="meta"))
