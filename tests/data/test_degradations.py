"""Degraded sequences for `gliomics robustness`: each changes only its own sequence, keeps the head's mask, and is
reproducible."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from gliomics.constants import SEQUENCES
from gliomics.data.degradations import DEGRADATIONS, Degradation, DegradeSequenced


def _sample(spacing=3.0):
    rng = np.random.default_rng(0)
    shape = (len(SEQUENCES), 20, 20, 16)
    image = 100.0 + 20.0 * rng.random(shape)
    image[:, :2] = 0.0  # background
    z = np.linspace(0, 1, shape[-1])
    image[:, 5:15, 5:15] += 60.0 * np.sin(6 * np.pi * z)  # structure along the slice axis
    affine = np.diag([spacing, spacing, spacing, 1.0])
    return {"image": MetaTensor(torch.tensor(image, dtype=torch.float32), affine=torch.tensor(affine)),
            "present": torch.ones(len(SEQUENCES), dtype=torch.bool)}


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_each_degradation_changes_its_sequence_only_and_keeps_the_mask(name):
    data = _sample()
    out = DegradeSequenced(Degradation("t2f", name), seed=1)(data)
    k = SEQUENCES.index("t2f")
    before, after = data["image"], out["image"]
    assert after.shape == before.shape
    assert not torch.allclose(after[k], before[k], atol=1e-3)
    for other in range(len(SEQUENCES)):
        if other != k:
            assert torch.equal(after[other], before[other])
    assert torch.all(after[k][before[k] == 0] == 0)


def test_same_seed_same_noise_and_a_missing_sequence_is_left_alone():
    d = Degradation("t1c", "Rician noise 15%")
    a, b = DegradeSequenced(d, seed=3)(_sample()), DegradeSequenced(d, seed=3)(_sample())
    assert torch.equal(a["image"], b["image"])
    assert not torch.equal(a["image"], DegradeSequenced(d, seed=4)(_sample())["image"])
    data = _sample()
    data["present"][SEQUENCES.index("t1c")] = False
    assert torch.equal(DegradeSequenced(d)(data)["image"], data["image"])


def test_stronger_noise_changes_more():
    k = SEQUENCES.index("t2w")
    diffs = [float((DegradeSequenced(Degradation("t2w", n), seed=0)(_sample())["image"][k] - _sample()["image"][k])
                   .abs().mean()) for n in ("Rician noise 5%", "Rician noise 15%")]
    assert diffs[1] > 2 * diffs[0]


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown sequence"):
        Degradation("dwi", "bias field")
    with pytest.raises(ValueError, match="unknown degradation"):
        Degradation("t2f", "motion")
