"""Shared test set-up: GPU tests skip on machines without CUDA; real data lives in ../shared/data (or wherever
LRGEN_SHARED_DATA points); shared fixtures. Plain helper functions are in helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers import locate_shared_data


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real genomes and VCF beside the repository: ``../shared/data`` or ``$LRGEN_SHARED_DATA``.

    When the folder is missing, the tests that use it fail under CI (``CI=true``) and skip elsewhere, with a
    message naming the folder and the variable.
    """
    return locate_shared_data()


@pytest.fixture(scope="session")
def glrb_bench(tmp_path_factory):
    """``glrb_bench(n_train=, n_test=)``: (data folder, genome FASTA) of a GLRB fixture
    (:func:`lrgen.glrb.fixture.make_fixture`) of that size, as strings, written once per session and size."""
    from lrgen.glrb.fixture import make_fixture

    made: dict[tuple[int, int], tuple[str, str]] = {}

    def bench(n_train: int, n_test: int) -> tuple[str, str]:
        if (n_train, n_test) not in made:
            info = make_fixture(tmp_path_factory.mktemp("glrb") / "data", n_train=n_train, n_test=n_test)
            made[n_train, n_test] = info["data_dir"], info["genome"]
        return made[n_train, n_test]

    return bench


@pytest.fixture(autouse=True)
def _deterministic_one_thread():
    """Seeded, and one torch thread: the test models are tiny, and on a shared two-core machine a second thread
    only adds contention (several times slower under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
