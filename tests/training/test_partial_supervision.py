"""Training on a mix of supervision: subregions, whole-tumour masks and markers on different cases."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gliomics.cli.main import app
from gliomics.data.cohort import build_cohort
from gliomics.data.splits import make_splits
from gliomics.data.transforms import train_transforms
from gliomics.losses import MultiTaskLoss
from gliomics.models.registry import create_model
from gliomics.training.trainer import run_training
from gliomics_testing import tiny_config


@pytest.fixture(scope="module")
def mixed_phantom(tmp_path_factory):
    """Twelve 4 mm phantom cases, three of each kind: full, subregions only, whole-tumour mask + markers, markers."""
    from gliomics.phantom import PhantomSettings, generate_cohort

    out = tmp_path_factory.mktemp("mixed")
    kinds = (("full", 0.25), ("seg", 0.25), ("wt", 0.25), ("markers", 0.25))
    generate_cohort(out, PhantomSettings(cases=12, spacing=4.0, sites=2, seed=5, supervision=kinds), progress=False)
    return out


def test_one_epoch_over_all_four_kinds(mixed_phantom, tmp_path):
    run = tmp_path / "run"
    summary = run_training(tiny_config("data.val_fraction=0.34"), data=mixed_phantom,
                           markers=mixed_phantom / "markers.csv", out=run, epochs=1, device="cpu", progress=False)
    counts = summary["supervision"]
    total = counts["train"]["cases"] + counts["val"]["cases"]
    assert total == 12
    assert counts["train"]["subregions"] + counts["val"]["subregions"] == 6
    assert counts["train"]["wt_mask"] + counts["val"]["wt_mask"] == 3
    assert counts["train"]["markers"]["idh"] + counts["val"]["markers"]["idh"] == 9  # the "seg" kind has none
    # validation says how many cases each figure rests on
    val = summary["val"]
    assert val["n_dice"] == counts["val"]["subregions"]
    assert val.get("n_idh", 0) == counts["val"]["markers"]["idh"]
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "train_wt" in row and "train_seg" in row
    assert json.loads((run / "train_summary.json").read_text())["supervision"] == summary["supervision"]


def test_split_is_patient_level_and_spreads_every_kind(mixed_phantom):
    cohort = build_cohort(mixed_phantom, mixed_phantom / "markers.csv")
    splits = make_splits(cohort, val_fraction=0.34, seed=0)
    patients = {c.case_id: c.patient for c in cohort}
    train, val = ({patients[c] for c in splits[k]} for k in ("train", "val"))
    assert not train & val and len(splits["train"]) + len(splits["val"]) == 12
    kind = {c.case_id: c.supervision for c in cohort}
    assert {kind[c] for c in splits["val"]} == {"subregions+markers", "subregions", "wt_mask+markers", "markers"}


def test_a_case_without_any_supervision_is_an_error_naming_it(tiny_case_dir, tmp_path):
    folder = tiny_case_dir("BraTS-GLI-00009-000", with_seg=False)
    tiny_case_dir("BraTS-GLI-00001-000")
    result = CliRunner().invoke(app, ["train", "--data", str(folder.parent), "-o", str(tmp_path / "run"),
                                      "--epochs", "1", "--no-progress"])
    assert result.exit_code == 2
    line = result.output.strip()
    assert "BraTS-GLI-00009-000" in line and "no supervision" in line and len(line.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_several_cohorts_must_pair_data_with_markers(mixed_phantom, tmp_path):
    result = CliRunner().invoke(app, ["train", "--data", str(mixed_phantom), "--data", str(mixed_phantom),
                                      "--markers", str(mixed_phantom / "markers.csv"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "one --markers per --data" in result.output
    table = str(mixed_phantom / "markers.csv")
    result = CliRunner().invoke(app, ["train", "--data", str(mixed_phantom), "--markers", table,
                                      "--data", str(mixed_phantom), "--markers", table, "-o", str(tmp_path / "r")])
    assert result.exit_code == 2 and "is also in" in result.output  # the same case twice
    assert not (tmp_path / "r").exists()


def _samples(cohort, n=1):
    transform = train_transforms((32, 32, 32), spacing=(4.0, 4.0, 4.0), modality_dropout=0.0, affine_prob=0.0,
                                 blur_noise_prob=0.0, contrast_prob=0.0)
    transform.set_random_state(seed=0)
    out = []
    for c in cohort:
        for _ in range(n):
            s = transform({"case": c.case, "markers": c.marker_vector()})
            out.append(s[0] if isinstance(s, list) else s)
    return out


def test_samples_carry_their_supervision(mixed_phantom):
    cohort = build_cohort(mixed_phantom, mixed_phantom / "markers.csv")
    flags = {"subregions+markers": [1, 0], "subregions": [1, 0], "wt_mask+markers": [0, 1], "markers": [0, 0]}
    for case, sample in zip(cohort, _samples(cohort), strict=True):
        assert sample["supervision"].tolist() == flags[case.supervision], case.case_id
        label = np.asarray(sample["label"])
        if case.supervision == "wt_mask+markers":
            assert set(np.unique(label)) <= {0, 1} and label.any()  # the mask, centred on the tumour
        if case.supervision == "markers":
            assert not label.any()


def _tiny_model():
    torch.manual_seed(0)
    return create_model("mgmtnet_cpu", feature_size=4, embed_channels=4, swin_heads=[1, 2], marker_hidden=8)


def _grads(model, batch, loss):
    model.train()
    model.zero_grad()
    image = torch.stack([torch.as_tensor(s["image"]) for s in batch])
    out = model(image, torch.stack([s["present"] for s in batch]))
    targets = {"label": torch.stack([torch.as_tensor(s["label"]) for s in batch]),
               "markers": torch.stack([s["markers"] for s in batch]),
               "supervision": torch.stack([s["supervision"] for s in batch])}
    losses = loss(out, targets)
    losses["total"].backward()
    losses = {k: float(v.detach()) for k, v in losses.items()}
    heads = sum(float(p.grad.abs().sum()) for n, p in model.named_parameters()
                if "marker" in n and p.grad is not None)
    decoder = sum(float(p.grad.abs().sum()) for n, p in model.named_parameters()
                  if n.startswith("decoder") and p.grad is not None)
    return losses, heads, decoder


def test_gradients_reach_the_marker_heads_from_marker_only_cases_and_the_decoder_from_masks(mixed_phantom):
    cohort = build_cohort(mixed_phantom, mixed_phantom / "markers.csv")
    by_kind = {}
    for c in cohort:
        by_kind.setdefault(c.supervision, []).append(c)
    model, loss = _tiny_model(), MultiTaskLoss(label_smoothing=0.0)
    marker_only = _samples(by_kind["markers"][:2])
    losses, heads, decoder = _grads(model, marker_only, loss)
    assert losses["seg"] == 0.0 and losses["wt"] == 0.0 and losses["marker"] > 0
    assert heads > 0 and decoder == 0.0
    masks = [{**s, "markers": torch.full_like(s["markers"], float("nan"))}
             for s in _samples(by_kind["wt_mask+markers"][:2])]
    losses, heads, decoder = _grads(model, masks, loss)
    assert losses["wt"] > 0 and losses["seg"] == 0.0 and losses["marker"] == 0.0
    assert decoder > 0


def test_subregion_share_sets_the_fraction_of_patches_from_cases_with_subregions(mixed_phantom):
    from gliomics.runtime.distributed import DistInfo
    from gliomics.training.data import make_loader

    cohort = build_cohort(mixed_phantom, mixed_phantom / "markers.csv")
    info = DistInfo()
    for share, lo, hi in ((0.9, 0.8, 0.97), (None, 0.4, 0.6)):
        extra = [] if share is None else [f"train.subregion_share={share}"]
        loader = make_loader(tiny_config("data.cache=false", *extra), cohort, info, seed=0)
        drawn = [i for _ in range(40) for i in loader.sampler]
        frac = np.mean([cohort[i].has_subregions for i in drawn])
        assert lo < frac < hi, (share, frac)
