"""Domain randomisation of training cases: each ingredient changes the sequence it draws, keeps the background and
the missing sequences at zero, and the chain is seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gliomics.data.randomisation import INGREDIENTS, StrippingError, ThickSlices, randomisation_transforms
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
