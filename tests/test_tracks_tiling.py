import math

import pytest
import torch

from lrgen.errors import LrgenError
from lrgen.tracks.lm_tracks import lm_tracks
from lrgen.tracks.tiling import tile_region


@pytest.mark.parametrize("length,context,flank", [(1000, 100, 10), (999, 128, 0), (5, 100, 20), (1, 3, 1), (4096, 512, 64)])
def test_interiors_cover_region_exactly_once(length, context, flank):
    start = 1234
    windows = list(tile_region("20", start, start + length, context, flank))
    assert len(windows) == -(-length // (context - 2 * flank))  # ceil(length / interior)
    covered = []
    for w in windows:
        assert w.end - w.start == context
        assert w.start <= w.keep_start and w.keep_end <= w.end
        assert w.keep_start - w.start == flank  # the left flank is always full context
        covered.extend(range(w.keep_start, w.keep_end))
    assert covered == list(range(start, start + length))


def test_bad_tiling_arguments():
    with pytest.raises(LrgenError):
        list(tile_region("1", 0, 10, 10, 5))
    with pytest.raises(LrgenError):
        list(tile_region("1", 10, 10, 10, 1))


def test_lm_tracks_values():
    from lrgen.tokenizer import A_ID, C_ID, G_ID, N_ID, T_ID

    logits = torch.full((1, 3, 12), -50.0)
    probs = torch.tensor([0.7, 0.1, 0.1, 0.1])
    logits[0, 0, [A_ID, C_ID, G_ID, T_ID]] = probs.log()
    logits[0, 1, [A_ID, C_ID, G_ID, T_ID]] = 0.0  # uniform
    ids = torch.tensor([[A_ID, C_ID, N_ID]])
    tracks = lm_tracks(logits, ids, (A_ID, C_ID, G_ID, T_ID))
    assert tracks["logprob"][0, 0].item() == pytest.approx(math.log(0.7), abs=1e-5)
    assert tracks["logprob"][0, 1].item() == pytest.approx(math.log(0.25), abs=1e-5)
    assert tracks["entropy"][0, 1].item() == pytest.approx(math.log(4), abs=1e-5)
    assert tracks["max-alt-llr"][0, 0].item() == pytest.approx(math.log(0.1 / 0.7), abs=1e-5)
    assert tracks["max-alt-llr"][0, 1].item() == pytest.approx(0.0, abs=1e-5)
    for name in tracks:
        assert math.isnan(tracks[name][0, 2].item())
