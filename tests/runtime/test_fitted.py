"""The fitted-artefacts file of a run: one writer, one reader, old runs, ensembles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gliomics.errors import CheckpointError
from gliomics.runtime.fitted import (
    FITTED_FILE,
    FittedArtefacts,
    ensemble_fitted,
    read_fitted,
    update_fitted,
    write_fitted,
)

FITTED = FittedArtefacts(thresholds={"idh": 0.4}, min_label_mm3={"ET": 120.0}, min_component_mm3={"NETC": 30.0},
                         calibration={"source": "validation", "markers": {}}, marker_readout={"coef": {}})


def test_written_file_reads_back_equal(tmp_path: Path) -> None:
    """Every field survives the round trip; the file carries its version."""
    path = write_fitted(tmp_path, FITTED)
    assert path == tmp_path / FITTED_FILE
    assert json.loads(path.read_text())["version"] == 1
    assert read_fitted(tmp_path) == FITTED


def test_update_replaces_only_the_given_fields(tmp_path: Path) -> None:
    write_fitted(tmp_path, FITTED)
    update_fitted(tmp_path, calibration={"source": "held-out"})
    back = read_fitted(tmp_path)
    assert back.calibration == {"source": "held-out"}
    assert back.model_dump(exclude={"calibration"}) == FITTED.model_dump(exclude={"calibration"})


def test_a_folder_without_anything_fitted_reads_empty(tmp_path: Path) -> None:
    assert read_fitted(tmp_path) == FittedArtefacts()


def test_an_old_run_is_read_from_its_checkpoint_keys_and_calibration_file(tmp_path: Path) -> None:
    """Runs written before the file kept the artefacts as checkpoint keys and the calibration beside them."""
    state = {"thresholds": {"tert": 0.3}, "min_label_mm3": {"RC": 9.0}, "calibration": {"source": "old"},
             "marker_readout": None, "model": {}}
    (tmp_path / "calibration.json").write_text(json.dumps({"source": "calibrate"}))
    fitted = read_fitted(tmp_path, state)
    assert fitted.thresholds == {"tert": 0.3} and fitted.min_label_mm3 == {"RC": 9.0}
    assert fitted.calibration == {"source": "calibrate"} and fitted.marker_readout is None


@pytest.mark.parametrize(("text", "message"), [
    ('{"version": 2}', r"version 2, this gliomics reads version 1; refit it: `gliomics calibrate"),
    ("{not json", r"unreadable .*; refit it"),
    ('{"version": 1, "thresholds": {"idh": "high"}}', r"thresholds\.idh: .*; refit it"),
    ('{"version": 1, "surprise": 1}', r"surprise: .*; refit it"),
])
def test_a_bad_file_is_one_clear_error_saying_how_to_refit(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / FITTED_FILE).write_text(text)
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / FITTED_FILE}: {message}"):
        read_fitted(tmp_path)


def test_an_ensemble_averages_thresholds_takes_median_minimums_and_its_own_calibration() -> None:
    members = [FittedArtefacts(thresholds={"idh": 0.2, "codel_1p19q": 0.5, "tert": 0.1}, min_label_mm3={"ET": 10.0}),
               FittedArtefacts(thresholds={"idh": 0.4}, min_label_mm3={"ET": 30.0, "NETC": 4.0},
                               min_component_mm3={"RC": 2.0}, calibration={"source": "member"})]
    out = ensemble_fitted(members, FittedArtefacts(calibration={"source": "out of fold"}))
    assert out.thresholds == pytest.approx({"idh": 0.3, "codel_1p19q": 0.5, "tert": 0.3})
    assert out.min_label_mm3 == {"ET": 20.0, "NETC": 2.0} and out.min_component_mm3 == {"RC": 1.0}
    assert out.calibration == {"source": "out of fold"} and out.marker_readout is None
