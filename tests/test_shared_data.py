"""Where the tests find the shared real data (helpers.locate_shared_data, behind the ``shared_data`` fixture)."""

from __future__ import annotations

from pathlib import Path

import pytest

import helpers
from helpers import DEFAULT_SHARED_DATA, SHARED_DATA_VARIABLE, locate_shared_data


def test_default_is_shared_data_beside_the_repository():
    assert DEFAULT_SHARED_DATA == Path(__file__).resolve().parents[1].parent / "shared" / "data"


def test_the_variable_points_elsewhere(tmp_path):
    assert locate_shared_data({SHARED_DATA_VARIABLE: str(tmp_path)}) == tmp_path.resolve()


@pytest.mark.parametrize("ci", ["true", "True", "1"])
def test_missing_folder_fails_under_ci_naming_path_and_variable(tmp_path, ci):
    missing = tmp_path / "nowhere"
    with pytest.raises(pytest.fail.Exception, match="not found") as err:
        locate_shared_data({SHARED_DATA_VARIABLE: str(missing), "CI": ci})
    assert str(missing) in str(err.value) and SHARED_DATA_VARIABLE in str(err.value)


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_missing_folder_skips_elsewhere_naming_path_and_variable(tmp_path, ci):
    missing = tmp_path / "nowhere"
    environ = {SHARED_DATA_VARIABLE: str(missing)} | ({} if ci is None else {"CI": ci})
    with pytest.raises(pytest.skip.Exception, match="not found") as err:
        locate_shared_data(environ)
    assert str(missing) in str(err.value) and SHARED_DATA_VARIABLE in str(err.value)


def test_missing_default_folder_names_the_variable(tmp_path, monkeypatch):
    missing = tmp_path / "shared" / "data"
    monkeypatch.setattr(helpers, "DEFAULT_SHARED_DATA", missing)
    with pytest.raises(pytest.fail.Exception, match="not found") as err:
        locate_shared_data({"CI": "true"})
    assert str(missing) in str(err.value) and f"set {SHARED_DATA_VARIABLE}" in str(err.value)
