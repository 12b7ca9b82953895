"""MONAI transforms: loading a case, inference preprocessing, training chain and modality dropout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from gliomics.constants import MARKERS, SEQUENCES
from gliomics.data.randomisation import PerSequenced
from gliomics.data.transforms import (
    LoadCased,
    ModalityDropoutd,
    ScannerBlurNoised,
    inference_transforms,
    sequences_present,
    train_transforms,
)
from gliomics.io import Case, discover_cases
from gliomics_testing import DEFAULT_AFFINE, make_brats_case, synthetic_seg

SHAPE = (16, 16, 12)


def _case(tmp_path: Path, case_id: str = "C-00001-000", **kwargs) -> Case:
    folder = make_brats_case(tmp_path / "brats", case_id, shape=SHAPE, **kwargs)
    (case,) = discover_cases(folder, allow_missing=bool(kwargs.get("missing")))
    return case


def _sample(train_out: object) -> dict:
    # RandCropByPosNegLabeld returns a list of num_samples (= 1) dicts, which Compose passes on as a list
    assert isinstance(train_out, list) and len(train_out) == 1
    return train_out[0]


# ---------------------------------------------------------------- LoadCased


def test_load_cased(tmp_path: Path) -> None:
    case = _case(tmp_path)
    out = LoadCased()({"case": case, "markers": [1.0, float("nan"), 0.0], "extra": 3})
    assert "case" not in out and out["extra"] == 3
    assert out["case_id"] == case.case_id
    image, label = out["image"], out["label"]
    assert isinstance(image, MetaTensor) and isinstance(label, MetaTensor)
    assert image.shape == (len(SEQUENCES), *SHAPE) and image.dtype == torch.float32
    assert label.shape == (1, *SHAPE)
    np.testing.assert_allclose(image.affine.numpy(), DEFAULT_AFFINE)
    np.testing.assert_allclose(label.affine.numpy(), DEFAULT_AFFINE)
    np.testing.assert_array_equal(label[0].numpy(), synthetic_seg(SHAPE))
    assert out["present"].dtype == torch.bool and out["present"].tolist() == [True] * len(SEQUENCES)
    np.testing.assert_array_equal(out["markers"].numpy(), np.array([1.0, np.nan, 0.0], dtype=np.float32))


def test_load_cased_without_markers_or_seg(tmp_path: Path) -> None:
    case = _case(tmp_path)
    out = LoadCased(load_seg=False)({"case": case})
    assert "label" not in out
    assert out["markers"].shape == (len(MARKERS),) and torch.isnan(out["markers"]).all()


def test_load_cased_missing_sequence(tmp_path: Path) -> None:
    case = _case(tmp_path, missing=("t2w",))
    out = LoadCased()({"case": case})
    k = SEQUENCES.index("t2w")
    assert out["present"].tolist() == [s != "t2w" for s in SEQUENCES]
    assert torch.count_nonzero(out["image"][k]) == 0
    assert sequences_present(out["present"]) == [s for s in SEQUENCES if s != "t2w"]


# ---------------------------------------------------------------- inference_transforms


def _check_normalised(image: torch.Tensor, present: list[bool]) -> None:
    for c, p in enumerate(present):
        channel = image[c]
        if not p:
            assert torch.count_nonzero(channel) == 0
            continue
        values = channel[channel != 0].double()
        assert abs(values.mean().item()) < 1e-4
        assert values.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("divisible", [16, 8])
def test_inference_transforms(tmp_path: Path, divisible: int) -> None:
    case = _case(tmp_path)
    out = inference_transforms(load_seg=True, divisible=divisible)({"case": case})
    image, label = out["image"], out["label"]
    assert image.shape[0] == len(SEQUENCES) and label.shape[0] == 1
    assert image.shape[1:] == label.shape[1:]
    assert all(n % divisible == 0 for n in image.shape[1:])
    assert all(n >= s for n, s in zip(sorted(image.shape[1:]), sorted(SHAPE), strict=True))
    assert not torch.isnan(image).any()
    _check_normalised(image, [True] * len(SEQUENCES))
    # labels survive reorientation and padding unchanged in count
    assert set(torch.unique(label).tolist()) <= {0, 1, 2, 3, 4}
    assert int((label > 0).sum()) == int((synthetic_seg(SHAPE) > 0).sum())
    assert isinstance(image, MetaTensor)  # keeps its affine for inversion


def test_inference_transforms_missing_sequence(tmp_path: Path) -> None:
    case = _case(tmp_path, missing=("t2w",))
    out = inference_transforms(load_seg=True)({"case": case})
    present = [s != "t2w" for s in SEQUENCES]
    assert out["present"].tolist() == present
    assert not torch.isnan(out["image"]).any() and not torch.isnan(out["label"]).any()
    _check_normalised(out["image"], present)


def test_train_transforms_missing_sequence(tmp_path: Path) -> None:
    chain = train_transforms(patch_size=(16, 16, 16), modality_dropout=1.0)
    chain.set_random_state(seed=0)
    sample = _sample(chain({"case": _case(tmp_path, missing=("t2w",))}))
    k = SEQUENCES.index("t2w")
    assert not sample["present"][k] and torch.count_nonzero(sample["image"][k]) == 0
    assert 1 <= int(sample["present"].sum()) <= len(SEQUENCES) - 2  # dropout removed at least one more
    assert not torch.isnan(sample["image"]).any()


def test_inference_transforms_without_seg(tmp_path: Path) -> None:
    out = inference_transforms()({"case": _case(tmp_path)})
    assert "label" not in out
    assert all(n % 16 == 0 for n in out["image"].shape[1:])


# ---------------------------------------------------------------- train_transforms


def test_train_transforms_shapes(tmp_path: Path) -> None:
    chain = train_transforms(patch_size=(16, 16, 16))
    chain.set_random_state(seed=0)
    sample = _sample(chain({"case": _case(tmp_path), "markers": [1.0, 0.0, float("nan")]}))
    assert tuple(sample["image"].shape) == (len(SEQUENCES), 16, 16, 16)
    assert tuple(sample["label"].shape) == (1, 16, 16, 16)
    assert not torch.isnan(sample["image"]).any()
    assert set(torch.unique(sample["label"]).tolist()) <= {0.0, 1.0, 2.0, 3.0, 4.0}
    assert sample["present"].dtype == torch.bool and sample["present"].any()
    assert sample["markers"].shape == (len(MARKERS),)


def test_train_transforms_reproducible(tmp_path: Path) -> None:
    case = _case(tmp_path)
    kwargs = {"patch_size": (16, 16, 16), "affine_prob": 1.0, "modality_dropout": 0.5, "blur_noise_prob": 1.0}

    def run(seed: int) -> dict:
        chain = train_transforms(**kwargs)
        chain.set_random_state(seed=seed)
        return _sample(chain({"case": case}))

    a, b, c = run(3), run(3), run(4)
    torch.testing.assert_close(torch.as_tensor(a["image"]), torch.as_tensor(b["image"]))
    torch.testing.assert_close(torch.as_tensor(a["label"]), torch.as_tensor(b["label"]))
    assert torch.equal(a["present"], b["present"])
    assert not torch.equal(torch.as_tensor(a["image"]), torch.as_tensor(c["image"]))


# ---------------------------------------------------------------- PerSequenced


def test_per_sequence_draws_differ_between_sequences_and_skip_missing_ones() -> None:
    from monai.transforms import RandAdjustContrast

    image = torch.rand(len(SEQUENCES), 8, 8, 8) + 0.5
    image[2] = 0  # a missing sequence
    out = PerSequenced(RandAdjustContrast(gamma=(0.5, 2.0), prob=1.0)).set_random_state(0)({"image": image})["image"]
    assert out.shape == image.shape and (out[2] == 0).all()
    # one gamma per sequence: the same input in two channels comes out different
    same = image.clone()
    same[1] = same[0]
    out = PerSequenced(RandAdjustContrast(gamma=(0.5, 2.0), prob=1.0)).set_random_state(0)({"image": same})["image"]
    assert not torch.allclose(out[0], out[1])
    again = PerSequenced(RandAdjustContrast(gamma=(0.5, 2.0), prob=1.0)).set_random_state(0)({"image": same})["image"]
    torch.testing.assert_close(out, again)


# ---------------------------------------------------------------- ScannerBlurNoised


def _head(seed: int = 0) -> MetaTensor:
    image = torch.zeros(len(SEQUENCES), 16, 16, 16)
    image[:, 4:12, 4:12, 4:12] = torch.from_numpy(np.random.default_rng(seed).normal(size=(len(SEQUENCES), 8, 8, 8)))
    return MetaTensor(image.float())


def test_scanner_blur_noise_changes_the_head_only_and_is_seeded() -> None:
    image = _head()
    out = ScannerBlurNoised(prob=1.0).set_random_state(0)({"image": image})["image"]
    assert (out[image == 0] == 0).all()  # skull-stripped background stays empty
    assert not torch.allclose(out[image != 0], image[image != 0])
    again = ScannerBlurNoised(prob=1.0).set_random_state(0)({"image": image})["image"]
    torch.testing.assert_close(out, again)
    assert out.shape == image.shape and torch.isfinite(out).all()


def test_scanner_blur_noise_prob_zero_is_identity() -> None:
    image = _head()
    out = ScannerBlurNoised(prob=0.0).set_random_state(0)({"image": image})["image"]
    torch.testing.assert_close(torch.as_tensor(out), torch.as_tensor(image))


def test_train_transforms_add_blur_noise_only_when_asked() -> None:
    def has(chain) -> bool:
        return any(isinstance(t, ScannerBlurNoised) for t in chain.transforms)

    assert not has(train_transforms(patch_size=(16, 16, 16), blur_noise_prob=0.0))
    assert has(train_transforms(patch_size=(16, 16, 16), blur_noise_prob=0.3))


def test_train_transforms_pass_the_contrast_settings_on() -> None:
    chain = train_transforms(patch_size=(16, 16, 16), contrast_prob=0.6, bias_field_max=0.3)
    inner = [t.transform for t in chain.transforms if isinstance(t, PerSequenced)]
    gamma = next(t for t in inner if type(t).__name__ == "RandAdjustContrast")
    bias = next(t for t in inner if type(t).__name__ == "RandBiasField")
    assert gamma.prob == 0.6 and bias.prob == 0.6
    assert tuple(bias.coeff_range) == (0.0, 0.3)


# ---------------------------------------------------------------- ModalityDropoutd


def _dropout_input(present: list[bool], seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    image = torch.from_numpy(rng.uniform(1.0, 2.0, size=(len(SEQUENCES), 4, 4, 4)).astype(np.float32))
    for k, p in enumerate(present):
        if not p:
            image[k] = 0
    return {"image": image, "present": torch.tensor(present)}


def test_modality_dropout_always_keeps_one() -> None:
    transform = ModalityDropoutd(prob=1.0)
    transform.set_random_state(seed=0)
    dropped_counts = set()
    for trial in range(40):
        data = _dropout_input([True] * len(SEQUENCES), seed=trial)
        original = data["image"].clone()
        out = transform(data)
        present = out["present"]
        assert present.dtype == torch.bool
        assert 1 <= int(present.sum()) < len(SEQUENCES)  # prob 1: always drops something, never everything
        for k in range(len(SEQUENCES)):
            if present[k]:
                assert torch.equal(out["image"][k], original[k])
            else:
                assert torch.count_nonzero(out["image"][k]) == 0
        assert torch.equal(data["image"], original)  # the input is not modified in place
        dropped_counts.add(len(SEQUENCES) - int(present.sum()))
    assert dropped_counts == set(range(1, len(SEQUENCES)))


def test_modality_dropout_respects_missing() -> None:
    transform = ModalityDropoutd(prob=1.0)
    transform.set_random_state(seed=1)
    for trial in range(20):
        out = transform(_dropout_input([True, False, True, True], seed=trial))
        assert not out["present"][1]
        assert 1 <= int(out["present"].sum()) <= 2


def test_modality_dropout_single_sequence_drops_nothing() -> None:
    transform = ModalityDropoutd(prob=1.0)
    transform.set_random_state(seed=0)
    data = _dropout_input([False, True, False, False])
    out = transform(data)
    assert out["present"].tolist() == [False, True, False, False]
    assert torch.equal(out["image"], data["image"])


def test_modality_dropout_prob_zero_is_identity() -> None:
    transform = ModalityDropoutd(prob=0.0)
    data = _dropout_input([True] * len(SEQUENCES))
    out = transform(data)
    assert out["present"].all()
    assert torch.equal(out["image"], data["image"])


def _brain(seed: int = 0):
    """Two sequences of a 20³ ball of brain-like intensities around 400 (zero outside)."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(20)] * 3, indexing="ij"))
    ball = ((grid - 9.5) ** 2).sum(0) < 8**2
    image = np.zeros((2, 20, 20, 20), np.float32)
    image[:, ball] = rng.normal(400, 40, (2, ball.sum()))
    return torch.from_numpy(image), torch.from_numpy(ball)


def test_robust_normalisation_ignores_bright_outliers_and_negative_background():
    """A few voxels at the int16 maximum and small negative values outside the head (two quirks of real scans)
    leave the robust z-scores of the head almost as they were; the plain z-score is thrown off by both."""
    from gliomics.data.transforms import normaliser

    clean, ball = _brain()
    quirky = clean.clone()
    quirky[0, 9, 9, 9:12] = 32767.0  # three outlier voxels inside the head
    quirky[:, ~ball] = -0.5  # interpolation ringing outside it
    inside = ball.clone()
    inside[9, 9, 9:12] = False
    reference = normaliser("robust")({"image": clean.clone()})["image"]
    robust = normaliser("robust")({"image": quirky.clone()})["image"]
    plain = normaliser("zscore")({"image": quirky.clone()})["image"]
    assert (robust[:, ~ball] == 0).all()
    assert float((robust[:, inside] - reference[:, inside]).abs().max()) < 0.1
    assert float((plain[:, inside] - reference[:, inside]).abs().max()) > 0.5
    assert float(robust.max()) < 6.0


def test_robust_normalisation_is_scale_free_and_keeps_a_partial_sequence_partial():
    """int16 scales (×20), float64 inputs and a sequence covering half the head: the same z-scores, zeros kept."""
    from gliomics.data.transforms import normaliser

    image, ball = _brain(1)
    image[1, :10] = 0  # the second sequence covers half the head
    a = normaliser("robust")({"image": image.clone()})["image"]
    b = normaliser("robust")({"image": (image.double() * 20.0)})["image"]
    assert a.dtype == torch.float32
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)
    assert (a[1, :10] == 0).all() and (a[1, 10:][ball[10:]] != 0).all()
    covered = a[1, 10:][ball[10:]]
    assert abs(float(covered.mean())) < 1e-4 and float(covered.std()) == pytest.approx(1.0, abs=0.02)


def test_unknown_normalisation_is_refused():
    from gliomics.data.transforms import normaliser

    with pytest.raises(ValueError, match="unknown normalisation 'minmax'; expected one of robust, zscore"):
        normaliser("minmax")
