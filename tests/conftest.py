"""Shared fixtures: tiny synthetic cases, a tiny phantom cohort and a tiny trained run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gliomics_testing import make_brats_case, tiny_config


@pytest.fixture
def tiny_case_dir(tmp_path: Path) -> Callable[..., Path]:
    """Factory writing synthetic BraTS cases under ``tmp_path / "brats"``; returns the case folder.

    Call it as ``tiny_case_dir("CASE-000", seed=1, missing=("t2f",))``; ``.parent`` of the result is the cohort
    folder to give to :func:`gliomics.io.discover_cases`.
    """

    def factory(case_id: str = "BraTS-GLI-00000-000", **kwargs) -> Path:
        return make_brats_case(tmp_path / "brats", case_id, **kwargs)

    return factory


@pytest.fixture(scope="session")
def tiny_phantom(tmp_path_factory) -> Path:
    """Eight phantom cases at 4 mm from two sites (markers.csv and phantom_truth.csv included)."""
    from gliomics.phantom import PhantomSettings, generate_cohort

    out = tmp_path_factory.mktemp("phantom4mm")
    generate_cohort(out, PhantomSettings(cases=8, spacing=4.0, sites=2, seed=3), progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(tiny_phantom, tmp_path_factory) -> Path:
    """A run folder trained for one epoch on :func:`tiny_phantom`."""
    from gliomics.training.trainer import run_training

    out = tmp_path_factory.mktemp("run")
    run_training(tiny_config(), data=tiny_phantom, markers=tiny_phantom / "markers.csv", out=out, epochs=1,
                 device="cpu", progress=False)
    return out


#: Session fixtures that build a cohort or train a run: built once per session, but once per mutant by mutmut.
COHORT_FIXTURES = frozenset({"tiny_phantom", "tiny_run"})


def pytest_collection_modifyitems(items) -> None:
    """Mark the tests that use a cohort fixture ``cohort_fixture``: ``make mutation`` leaves them out."""
    for item in items:
        if COHORT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cohort_fixture)
