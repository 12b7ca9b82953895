"""Fine-tuning with a few labelled cases of another cohort: ``gliomics train --init``, ``train.cohort_shares`` and
``data.val_cohorts``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.config import RunConfig
from gliomics.data.cohort import build_cohorts
from gliomics.errors import CheckpointError, ConfigError
from gliomics.models.registry import create_model
from gliomics.runtime.checkpoint import load_checkpoint
from gliomics.training.data import sampling_weights
from gliomics.training.fine_tuning import load_initial_weights, source_config
from gliomics_testing import TINY_OVERRIDES, tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def two_cohorts(tiny_phantom, tmp_path_factory) -> tuple[Path, Path]:
    """The tiny phantom cohort split in two folders: six cases with their markers and two with none (as a few real
    labelled cases next to phantoms)."""
    root = tmp_path_factory.mktemp("two_cohorts")
    cases = sorted(p for p in tiny_phantom.iterdir() if p.is_dir())
    big, small = root / "phantoms", root / "real"
    big.mkdir()
    for case in cases[:6]:
        (big / case.name).symlink_to(case, target_is_directory=True)
    for case in cases[6:]:  # copied: away from the phantom cohort's phantom_truth.csv they count as real cases
        shutil.copytree(case, small / case.name)
    rows = (tiny_phantom / "markers.csv").read_text().splitlines()
    (big / "markers.csv").write_text("\n".join([rows[0]] + [r for r in rows[1:]
                                                            if r.split(",")[0] in {c.name for c in cases[:6]}]) + "\n")
    return big, small


def test_cases_know_which_cohort_they_came_from(two_cohorts):
    big, small = two_cohorts
    cohort = build_cohorts([(big, big / "markers.csv"), (small, None)])
    assert [c.source for c in cohort] == [0] * 6 + [1] * 2


def test_cohort_shares_set_each_cohorts_share_of_the_patches(two_cohorts):
    big, small = two_cohorts
    cohort = build_cohorts([(big, big / "markers.csv"), (small, None)])
    weights = sampling_weights(tiny_config("train.cohort_shares=[0.5, 0.5]"), cohort)
    assert weights.sum() == pytest.approx(1.0)
    assert weights[6:].sum() == pytest.approx(0.5) and weights[6] == pytest.approx(0.25)
    assert weights[0] == pytest.approx(0.5 / 6)
    # a cohort with no training case left: the others share its share
    only_big = sampling_weights(tiny_config("train.cohort_shares=[0.2, 0.8]"), cohort[:6])
    assert only_big == pytest.approx(np.full(6, 1 / 6))
    # unset, every case equally often
    assert sampling_weights(tiny_config(), cohort) is None
    with pytest.raises(ConfigError, match="both set"):
        sampling_weights(tiny_config("train.cohort_shares=[1, 1]", "train.subregion_share=0.5"), cohort)
    with pytest.raises(ConfigError, match="positive"):
        tiny_config("train.cohort_shares=[1, 0]")


def test_loader_draws_the_small_cohort_as_often_as_asked(two_cohorts):
    from gliomics.runtime.distributed import DistInfo
    from gliomics.training.data import make_loader

    big, small = two_cohorts
    cohort = build_cohorts([(big, big / "markers.csv"), (small, None)])
    for shares, lo, hi in (("[0.5, 0.5]", 0.4, 0.6), (None, 0.15, 0.35)):
        extra = [] if shares is None else [f"train.cohort_shares={shares}"]
        loader = make_loader(tiny_config("data.cache=false", *extra), cohort, DistInfo(), seed=0)
        drawn = [i for _ in range(60) for i in loader.sampler]
        frac = np.mean([cohort[i].source == 1 for i in drawn])
        assert lo < frac < hi, (shares, frac)


def test_load_initial_weights_copies_the_source_and_refuses_another_network(tiny_run, tmp_path):
    cfg = RunConfig.model_validate(yaml.safe_load((tiny_run / "config.yaml").read_text()))
    model = create_model(cfg.model.name, **cfg.model.params)
    path = load_initial_weights(model, str(tiny_run))
    saved = load_checkpoint(path)["model"]
    assert all(torch.equal(v, saved[k]) for k, v in model.state_dict().items())
    other = create_model(cfg.model.name, **{**cfg.model.params, "feature_size": 8})
    with pytest.raises(ConfigError, match="do not fit"):
        load_initial_weights(other, str(tiny_run))
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_initial_weights(model, str(tmp_path / "nothing"))
    assert source_config(str(tiny_run)).model.params == cfg.model.params


def _args(big, small, out, *extra):
    args = ["train", "-d", str(big), "-k", str(big / "markers.csv"), "-d", str(small), "-k", "none", "-o", str(out),
            "--device", "cpu", "--no-progress", "--precision", "fp32", *extra]
    return args


def test_train_init_fine_tunes_on_two_cohorts_validating_on_the_first_alone(tiny_run, two_cohorts, tmp_path):
    big, small = two_cohorts
    out = tmp_path / "tuned"
    result = runner.invoke(app, _args(big, small, out, "--init", str(tiny_run), "--steps", "2",
                                      "--set", "data.val_cohorts=[0]", "--set", "data.val_fraction=0.34",
                                      "--set", "train.cohort_shares=[0.5, 0.5]"))
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["train"]["init_from"] == str(tiny_run.absolute())
    # the network is the source's: its config, not the default preset's
    source = yaml.safe_load((tiny_run / "config.yaml").read_text())
    assert config["model"] == source["model"] and config["data"]["working_spacing"] == source["data"]["working_spacing"]
    splits = json.loads((out / "splits.json").read_text())
    small_ids = {p.name for p in small.iterdir()}
    assert small_ids <= set(splits["train"]) and not small_ids & set(splits["val"])
    assert splits["val"]  # the first cohort still validates
    # training moved the weights away from the source's
    tuned, start = load_checkpoint(out / "last.pt")["model"], load_checkpoint(tiny_run / "best.pt")["model"]
    assert any(not torch.equal(tuned[k], start[k]) for k in start)
    # the model card names the real cases and the starting model; packaged, it says so
    card = json.loads((out / "model_card.json").read_text())["training_data"]
    assert card["other_case_ids"] == sorted(small_ids) and card["phantom_cases"] == 6
    assert card["started_from"] == str(tiny_run.absolute())
    pkg = tmp_path / "pkg"
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "summary.json").write_text(json.dumps({"cases": 2, "segmentation": {}}))
    result = runner.invoke(app, ["package-model", "-m", str(out), "-o", str(pkg), "--name", "tuned",
                                 "-e", f"real={ev}=2 cases"])
    assert result.exit_code == 0, result.output
    packaged = json.loads((pkg / "model_card.json").read_text())
    assert packaged["limitations"].startswith("Trained on 6 phantoms and 2 real cases")
    assert packaged["training"]["started_from"]["source"] == str(tiny_run.absolute())
    text = (pkg / "MODEL_CARD.md").read_text()
    assert f"2 other: {', '.join(sorted(small_ids))}" in text and "Fine-tuned from" in text


def test_fine_tuning_errors_are_one_line_and_leave_nothing(tiny_run, two_cohorts, tmp_path):
    big, small = two_cohorts
    cases = [
        (["--init", str(tmp_path / "missing")], "no checkpoint"),
        (["--init", str(tiny_run), "--preset", "mgmtnet_cpu"], "do not fit"),
        (["--set", "data.val_cohorts=[2]", *sum((["--set", o] for o in TINY_OVERRIDES), [])], "data.val_cohorts"),
        (["--set", "train.cohort_shares=[1, 1, 1]", *sum((["--set", o] for o in TINY_OVERRIDES), [])],
         "train.cohort_shares"),
    ]
    for k, (extra, message) in enumerate(cases):
        out = tmp_path / f"bad{k}"
        result = runner.invoke(app, _args(big, small, out, "--steps", "1", *extra))
        assert result.exit_code == 2, (extra, result.output)
        assert message in result.output and len(result.output.strip().splitlines()) == 1, result.output
        assert not out.exists()
