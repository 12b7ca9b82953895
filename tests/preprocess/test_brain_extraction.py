"""`--skull-strip`: the choices, what each records, the volume warning, and clear errors for HD-BET."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.errors import ConfigError
from gliomics.io import discover_cases
from gliomics.preprocess import PreprocessSettings, RegistrationSettings, brain_extraction, preprocess_case
from preprocess_testing import ATLAS_SHAPE, ATLAS_SPACING, QUIRK_SHAPE, QUIRK_SPACING, write_quirky_case, write_raw_case

runner = CliRunner()
FAST = RegistrationSettings(working_spacing=0.0, sampling=0.5, shrink=(2, 1), smoothing=(1.0, 0.0), iterations=100)


def _run(tmp_path, method: str, name: str = "out"):
    folder = write_quirky_case(tmp_path / name)
    case = discover_cases(folder.parent)[0]
    out = tmp_path / name / "pp" / case.case_id
    settings = PreprocessSettings(skip_registration=True, n4=False, skull_strip=method, shape=QUIRK_SHAPE,
                                  spacing=QUIRK_SPACING)
    record = preprocess_case(case, out, settings)
    mask = nib.load(out / "preprocess" / "brain_mask.nii.gz").get_fdata() > 0
    qc = json.loads((out / "preprocess" / "qc.json").read_text())
    return out, record, mask, qc


def test_atlas_and_none_choices(tmp_path):
    out, record, atlas_mask, qc = _run(tmp_path, "atlas", "a")
    brain = nib.load(next(out.parent.parent.glob("quirky/*/*-t1c.nii.gz"))).get_fdata() != 0
    assert np.array_equal(atlas_mask, brain)  # without registration: the reference's non-zero voxels
    assert record["steps"]["brain_mask"] == {"method": "atlas", "source": "nonzero", "sequence": None,
                                             "volume_ml": qc["brain_mask"]["volume_ml"]}
    out, record, head, qc = _run(tmp_path, "none", "n")
    assert qc["brain_mask"]["method"] == "none" and qc["brain_mask"]["source"] == "head foreground"
    assert qc["brain_mask"]["sequence"] == "t1n"
    assert head.sum() > atlas_mask.sum() and np.all(head[atlas_mask])  # the head holds the brain and more
    assert not any("plausible" in w for w in qc["warnings"])  # a head is not checked as a brain


def test_deepbet_runs_once_on_the_t1_and_masks_every_sequence(tmp_path):
    raw = write_raw_case(tmp_path)
    case = discover_cases(raw.folder.parent, allow_missing=True)[0]
    out = tmp_path / "pp" / case.case_id
    settings = PreprocessSettings(atlas=raw.atlas, mask=raw.atlas_mask, shape=ATLAS_SHAPE, spacing=ATLAS_SPACING,
                                  registration=FAST, n4=False)  # skull_strip: the default, deepbet
    record = preprocess_case(case, out, settings)
    assert record["steps"]["brain_mask"]["method"] == "deepbet"
    assert record["steps"]["brain_mask"]["sequence"] == "t1c"  # no T1 in this case: T1ce
    assert "kept" in record["steps"]["atlas"]["refined_on_brain"]
    mask = nib.load(out / "preprocess" / "brain_mask.nii.gz")
    assert mask.get_data_dtype() == np.uint8 and set(np.unique(np.asarray(mask.dataobj))) <= {0, 1}
    inside = np.asarray(mask.dataobj) > 0
    for s in ("t1c", "t2f"):
        assert np.all(nib.load(out / f"{case.case_id}-{s}.nii.gz").get_fdata()[~inside] == 0)
    qc = json.loads((out / "preprocess" / "qc.json").read_text())
    assert qc["brain_mask"]["method"] == "deepbet"
    assert qc["brain_mask"]["volume_ml_output_grid"] == pytest.approx(inside.sum() * ATLAS_SPACING ** 3 / 1000,
                                                                      abs=0.01)


def test_a_tiny_extracted_brain_is_warned_about(tmp_path, monkeypatch, caplog):
    def tiny(image):
        found = np.zeros(image.GetSize(), dtype=bool)
        found[18:22, 18:22, 14:18] = True
        return found

    monkeypatch.setattr(brain_extraction, "deepbet_mask", tiny)
    with caplog.at_level(logging.WARNING, logger="gliomics.preprocess"):
        _, record, mask, qc = _run(tmp_path, "deepbet")
    assert mask.sum() == 64 and qc["brain_mask"]["volume_ml"] == pytest.approx(64 * 8 / 1000, abs=0.01)
    warning = next(w for w in qc["warnings"] if "plausible" in w)
    assert "800-2000 mL" in warning and warning in caplog.text


def test_hd_bet_not_installed_is_one_line_and_exit_2(tmp_path, monkeypatch):
    folder = write_quirky_case(tmp_path)
    real = brain_extraction.installed
    monkeypatch.setattr(brain_extraction, "installed", lambda name: False if name.startswith("HD_BET") else real(name))
    result = runner.invoke(app, ["preprocess", "-i", str(folder.parent), "-o", str(tmp_path / "out"),
                                 "--skip-registration", "--skull-strip", "hd-bet", "--no-progress"])
    assert result.exit_code == 2
    assert "HD-BET is not installed" in result.output and "pip install hd-bet" in result.output
    assert not any((tmp_path / "out").glob("QRK-*"))


def test_hd_bet_without_its_parameters_is_a_config_error(tmp_path, monkeypatch):
    package = tmp_path / "site" / "HD_BET"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "hd_bet_prediction.py").write_text("")
    (package / "paths.py").write_text(f"folder_with_parameter_files = {str(tmp_path / 'params')!r}\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    with pytest.raises(ConfigError, match="HD-BET's parameters are missing .*checkpoint_final.pth"):
        brain_extraction.check_method("hd-bet")


def test_unknown_choice_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="--skull-strip: expected one of deepbet, hd-bet, atlas, none"):
        PreprocessSettings(skull_strip="bet")
    folder = write_quirky_case(tmp_path)
    result = runner.invoke(app, ["preprocess", "-i", str(folder.parent), "-o", str(tmp_path / "out"),
                                 "--skull-strip", "bet", "--no-progress"])
    assert result.exit_code == 2 and "--skull-strip" in result.output


def test_deterministic_torch_puts_everything_back():
    threads = torch.get_num_threads()
    assert not torch.are_deterministic_algorithms_enabled()
    with brain_extraction.deterministic_torch():
        assert torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(1)
    assert not torch.are_deterministic_algorithms_enabled() and torch.get_num_threads() == threads
