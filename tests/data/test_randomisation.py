"""Domain randomisation of training cases: each ingredient changes the sequence it draws, keeps the background and
the missing sequences at zero, and the chain is seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gliomics.data.randomisation import (
    INGREDIENTS,
    CompartmentContrast,
    KSpaceArtefact,
    OedemaGrowth,
    StrippingError,
    ThickSlices,
    randomisation_transforms,
)
from gliomics.data.transforms import train_transforms


def _head(seed: int = 0) -> torch.Tensor:
    """Four sequences of a 24³ head (a ball of textured intensities), the last missing."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"))
    ball = ((grid - 11.5) ** 2).sum(0) < 10**2
    image = np.zeros((4, 24, 24, 24), np.float32)
    for c in range(3):
        image[c][ball] = 100 + 50 * c + rng.normal(0, 10, ball.sum())
    return torch.from_numpy(image)


def _tumour_label() -> torch.Tensor:
    """Labels of :func:`_head`: an enhancing core (ET) of radius 3 inside an oedema (SNFH) shell of radius 5."""
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"))
    r = np.sqrt(((grid - 11.5) ** 2).sum(0))
    label = np.zeros((1, 24, 24, 24), np.uint8)
    label[0][r < 5] = 2
    label[0][r < 3] = 3
    return torch.from_numpy(label)


@pytest.mark.parametrize("ingredient", [i for i in INGREDIENTS if i != "stripping"])
def test_each_intensity_ingredient_changes_the_head_and_keeps_zeros(ingredient: str) -> None:
    [transform] = randomisation_transforms(1.0, (2.0, 2.0, 2.0), [ingredient])
    transform.set_random_state(seed=3)
    image = _head()
    out = transform({"image": image.clone(), "label": _tumour_label()})["image"]
    assert out.shape == image.shape
    background = image == 0
    assert (out[background] == 0).all()  # missing sequence and background stay zero
    assert not torch.allclose(out[~background], image[~background])


def test_a_probability_of_zero_is_no_chain_and_an_unknown_ingredient_is_refused() -> None:
    assert randomisation_transforms(0.0, (1.0, 1.0, 1.0)) == []
    with pytest.raises(ValueError, match="unknown randomisation ingredient 'wobble'"):
        randomisation_transforms(0.5, (1.0, 1.0, 1.0), ["wobble"])


def test_thick_slices_average_along_one_axis_only() -> None:
    """A 6 mm slab on a 2 mm grid averages three slices along the drawn axis; the other axes are untouched."""
    t = ThickSlices(prob=1.0, thickness_mm=(6.0, 6.0), spacing_mm=(2.0, 2.0, 2.0))
    t.set_random_state(seed=0)
    image = torch.zeros(1, 9, 9, 9)
    image[0, 4, 4, 4] = 9.0
    out = t(image)
    changed = torch.nonzero(out[0] != image[0])
    axes_moved = [a for a in range(3) if len(set(changed[:, a].tolist())) > 1]
    assert len(axes_moved) == 1
    assert out.sum() == pytest.approx(9.0, rel=0.2)
    assert out.max() < 9.0


def test_stripping_error_cuts_a_slab_from_image_and_labels_alike() -> None:
    t = StrippingError(prob=1.0, max_fraction=0.5)
    t.set_random_state(seed=1)
    image = _head()
    label = (image[:1] > 0).to(torch.uint8)
    out = t({"image": image.clone(), "label": label.clone()})
    cut = (image != 0).any(0) & ~(out["image"] != 0).any(0)
    assert cut.any()
    assert (out["label"][0][cut] == 0).all() and (out["label"] <= label).all()


def test_training_chain_with_randomisation_is_seeded() -> None:
    """Two chains with the same seed draw the same randomised patch; another seed draws another."""
    a, b, c = (train_transforms((16, 16, 16), randomisation=1.0, blur_noise_prob=0.0, affine_prob=0.0)
               for _ in range(3))
    image = _head()
    sample = {"image": image, "label": (image[:1] > 130).to(torch.uint8),
              "present": torch.tensor([True, True, True, False])}
    from monai.transforms import Compose

    outs = []
    for chain, seed in ((a, 5), (b, 5), (c, 6)):
        tail = Compose(chain.transforms[3:-1])  # after loading and cropping, before the typing
        tail.set_random_state(seed=seed)
        [patch] = tail({k: v.clone() for k, v in sample.items()})  # one patch per case
        outs.append(patch)
    assert torch.equal(outs[0]["image"], outs[1]["image"])
    assert not torch.equal(outs[0]["image"], outs[2]["image"])


def test_compartment_contrast_changes_the_tumour_only_and_keeps_the_labels() -> None:
    """Each compartment moves away from (or towards) the normal brain's level; the brain far from the tumour, the
    labels and the zeros do not change."""
    t = CompartmentContrast(prob=1.0, gain=(0.2, 0.2), fade=(0.0, 0.0))
    t.set_random_state(seed=0)
    image, label = _head(), _tumour_label()
    out = t({"image": image.clone(), "label": label.clone()})
    assert torch.equal(out["label"], label)
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"))
    r = torch.from_numpy(np.sqrt(((grid - 11.5) ** 2).sum(0)))
    far = (r > 9) & (image[0] != 0)  # four smoothing sigmas from the oedema
    assert torch.allclose(out["image"][:, far], image[:, far], atol=0.1)
    # a gain of 0.2 pulls the tumour's voxels to within a fifth of their distance from the normal level
    level = image[0][(image[0] != 0) & (label[0] == 0)].median()
    inner = r < 2
    assert (out["image"][0][inner] - level).abs().mean() < 0.5 * (image[0][inner] - level).abs().mean()
    assert (out["image"][3] == 0).all()


def test_compartment_contrast_fades_the_oedema_towards_its_outer_edge() -> None:
    """With a uniform gain of 1 and a full fade, the oedema next to the core keeps most of its contrast and the
    outer edge loses most of it."""
    image = torch.zeros(1, 24, 24, 24)
    label = _tumour_label()
    head = torch.from_numpy(np.ones((24, 24, 24), bool))
    image[0][head] = 100.0
    image[0][label[0] == 2] = 200.0
    t = CompartmentContrast(prob=1.0, gain=(1.0, 1.0), fade=(1.0, 1.0), smooth_voxels=0.01)
    t.set_random_state(seed=0)
    out = t({"image": image, "label": label})["image"][0]
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"))
    r = torch.from_numpy(np.sqrt(((grid - 11.5) ** 2).sum(0)))
    near, edge = (label[0] == 2) & (r < 3.6), (label[0] == 2) & (r > 4.5)
    assert out[near].mean() > out[edge].mean() + 30


def test_compartment_contrast_and_oedema_growth_leave_a_case_without_tumour_alone() -> None:
    image = _head()
    for t in (CompartmentContrast(prob=1.0), OedemaGrowth(prob=1.0)):
        t.set_random_state(seed=0)
        for sample in ({"image": image.clone(), "label": torch.zeros(1, 24, 24, 24, dtype=torch.uint8)},
                       {"image": image.clone()}):
            assert torch.equal(t(sample)["image"], image)


def test_oedema_growth_labels_new_oedema_in_the_bright_t1_tissue_and_brightens_it() -> None:
    """The oedema grows only into unlabelled head voxels, the core keeps its labels, and the grown voxels move
    towards the oedema's intensity on every sequence."""
    image = torch.zeros(4, 24, 24, 24)
    label = _tumour_label()
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"))
    head = torch.from_numpy(((grid - 11.5) ** 2).sum(0) < 11**2)
    image[:, head] = 100.0  # white matter everywhere (T1 at its quantile)
    image[2][label[0] == 2] = 180.0  # the oedema is bright on T2
    t = OedemaGrowth(prob=1.0, spacing_mm=(1.0, 1.0, 1.0), max_mm=3.0, strength=(1.0, 1.0), label_from=0.3)
    t.set_random_state(seed=4)
    out = t({"image": image.clone(), "label": label.clone()})
    new = (out["label"][0] == 2) & (label[0] != 2)
    assert new.any()
    assert (label[0][new] == 0).all() and (head[new]).all()
    assert torch.equal(out["label"][0][label[0] == 3], label[0][label[0] == 3])
    assert (out["image"][2][new] > 110).all()
    assert torch.allclose(out["image"][0], image[0])  # equal on T1: the ratio is 1
    assert (out["image"][:, ~head] == 0).all()


def test_kspace_artefacts_are_seeded_by_the_transform_and_refuse_an_unknown_kind() -> None:
    image = _head()[:1]
    for kind in ("motion", "ghosts"):
        a, b = KSpaceArtefact(kind, prob=1.0), KSpaceArtefact(kind, prob=1.0)
        a.set_random_state(seed=2)
        b.set_random_state(seed=2)
        out = a(image.clone())
        assert torch.equal(out, b(image.clone()))
        assert not torch.allclose(out, image) and (out >= 0).all()
    with pytest.raises(ValueError, match="unknown k-space artefact 'spikes'"):
        KSpaceArtefact("spikes")
