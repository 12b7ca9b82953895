"""Tumour descriptors: shapes, meaning of the features, and no gradient into the segmentation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gliomics.models.blocks.descriptors import TumourDescriptors, _axis
from gliomics.models.registry import create_model


def _case(shape=(16, 16, 16)):
    x = torch.zeros(1, 4, *shape)
    x[:, :, 2:14, 2:14, 2:14] = 1.0  # brain
    labels = torch.zeros(shape, dtype=torch.long)
    labels[4:8, 4:8, 4:8] = 3  # ET
    labels[5:7, 5:7, 5:7] = 1  # NETC inside
    logits = torch.nn.functional.one_hot(labels, 5).permute(3, 0, 1, 2)[None].float() * 20.0
    return x, logits


def test_features_reflect_the_segmentation():
    x, logits = _case()
    desc = TumourDescriptors(4, 5)
    out = desc(x, logits, torch.ones(1, 4, dtype=torch.bool))
    assert out.shape == (1, desc.out_features)
    assert torch.isfinite(out).all()
    et_share = out[0, 4]
    assert abs(float(et_share) - 56 / 65) < 0.02  # 56 ET voxels, 8 NETC voxels (+1 in the denominator)
    # the tumour sits off-centre towards low indices: negative offsets on the last two axes, folded on the first
    assert out[0, -7] > 0 and out[0, -6] < 0 and out[0, -5] < 0


def test_descriptors_do_not_backpropagate_into_the_segmentation():
    x, logits = _case()
    logits.requires_grad_(True)
    out = TumourDescriptors(4, 5)(x, logits, None)
    assert not out.requires_grad


def test_mgmtnet_with_descriptors_runs_and_learns_heads():
    model = create_model("mgmtnet_cpu", feature_size=4, embed_channels=4, descriptors=True)
    x = torch.randn(1, 4, 32, 32, 32)
    out = model(x, torch.tensor([[True, True, False, True]]))
    loss = sum(v.sum() for v in out["markers"].values())
    loss.backward()
    first = next(iter(model.marker_heads.heads.values()))[1]
    assert first.in_features == model.pool.out_channels + model.descriptors.out_features
    assert first.weight.grad is not None and torch.isfinite(first.weight.grad).all()


def _reference(x: torch.Tensor, logits: torch.Tensor, present: torch.Tensor | None) -> np.ndarray:
    """The descriptors of every case, written out voxel by voxel in float64."""
    rows = []
    for b in range(x.shape[0]):
        image = x[b].double().numpy()
        e = np.exp(logits[b].double().numpy() - logits[b].double().numpy().max(0))
        probs = e / e.sum(0)
        brain = np.abs(image).sum(0) > 0
        brain_vol = max(brain.sum(), 1.0)
        netc, snfh, et, rc = (probs[k].sum() for k in (1, 2, 3, 4))
        row = [np.log1p(1000.0 * v / brain_vol) for v in (netc, snfh, et, rc)]
        row.append(et / (netc + et + 1.0))
        row.append(np.log1p(snfh / (netc + et + rc + 1.0)))
        for region in (1, 3, 2):  # NETC, ET, SNFH
            for c in range(image.shape[0]):
                row.append((probs[region] * image[c]).sum() / (probs[region].sum() + 1.0))
        coords = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in image.shape[1:]], indexing="ij")
        tumour = 1.0 - probs[0]
        offsets = []
        for g in coords:
            t_centre = (tumour * g).sum() / (tumour.sum() + 1e-3)
            b_centre = (brain * g).sum() / brain_vol
            spread = np.sqrt(max((brain * g**2).sum() / brain_vol - b_centre**2, 1e-4))
            offsets.append((t_centre - b_centre) / spread)
        offsets[0] = abs(offsets[0])
        row += offsets
        row += [1.0] * image.shape[0] if present is None else [float(f) for f in present[b]]
        rows.append(row)
    return np.array(rows)


def _random_case(seed: int, shape=(6, 5, 7), channels: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Signed intensities with a zero border (outside the brain) and soft logits, tumour left of centre."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, channels, *shape, generator=gen)
    x[:, :, 0] = 0.0
    x[:, :, :, -1] = 0.0
    logits = torch.randn(2, 5, *shape, generator=gen)
    logits[:, 0] += 2.0
    logits[:, 1:, : shape[0] // 2] += 2.5  # more tumour at low indices of the first axis
    return x, logits


def test_layout_and_size_of_the_descriptors():
    """4 volumes, 2 ratios, 3 regions x C means, 3 offsets and C flags."""
    assert TumourDescriptors(4, 5).out_features == 25
    assert TumourDescriptors(2, 6).out_features == 17
    assert TumourDescriptors(1, 5).in_channels == 1
    with pytest.raises(ValueError, match=r"num_classes >= 5\), got 4"):
        TumourDescriptors(4, 4)


@pytest.mark.parametrize("present", [None, torch.tensor([[True, False], [False, True]])], ids=["all", "flags"])
def test_descriptors_exact_values(present):
    """Every feature of two different cases equals its formula: volumes, ratios, region means, folded offsets,
    presence flags."""
    x, logits = _random_case(0)
    out = TumourDescriptors(2, 5)(x, logits, present)
    assert out.shape == (2, 17) and out.dtype == torch.float32
    np.testing.assert_allclose(out.double().numpy(), _reference(x, logits, present), rtol=2e-5, atol=2e-5)


def test_descriptors_of_a_faint_tumour():
    """A faint tumour (total probability well below one voxel) keeps its centre: the small epsilon of the
    denominator matters little but measurably."""
    x, logits = _random_case(1, shape=(5, 6, 4), channels=3)
    logits[:, 0] += 9.0
    out = TumourDescriptors(3, 5)(x, logits, None)
    expected = _reference(x, logits, None)
    assert (1.0 - torch.softmax(logits, 1)[:, 0]).flatten(1).sum(1).max() < 0.5
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=1e-5, atol=1e-4)


def test_descriptors_of_an_empty_image():
    """An all-zero image has no brain: volumes are divided by one voxel, the spread is clamped (no NaN)."""
    _, logits = _random_case(2, shape=(4, 4, 4))
    x = torch.zeros(2, 2, 4, 4, 4)
    out = TumourDescriptors(2, 5)(x, logits, None)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out.double().numpy(), _reference(x, logits, None), rtol=2e-5, atol=2e-5)


def test_descriptors_of_a_single_voxel_brain():
    """A brain of one voxel has zero spread, which is clamped to 1e-4 (offsets in units of 0.01)."""
    _, logits = _random_case(3, shape=(3, 4, 5))
    x = torch.zeros(2, 2, 3, 4, 5)
    x[:, 1, 1, 2, 3] = -2.0  # a negative intensity still marks brain
    out = TumourDescriptors(2, 5)(x, logits, None)
    expected = _reference(x, logits, None)
    np.testing.assert_allclose(out.double().numpy(), expected, rtol=2e-5, atol=2e-4)
    np.testing.assert_allclose(out[:, :4].double().numpy(), expected[:, :4], rtol=1e-6)


def test_descriptor_features_by_position():
    """A hard segmentation, hand counted: NETC 8, ET 56 voxels; brain 12**3 voxels; intensity 1 in the brain."""
    x, logits = _case()
    out = TumourDescriptors(4, 5)(x, logits, torch.tensor([[True, False, True, False]]))[0]
    brain = 12.0**3
    volumes = np.log1p(1000.0 * np.array([8, 0, 56, 0]) / brain)
    np.testing.assert_allclose(out[:4].numpy(), volumes, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out[4].item(), 56 / 65, rtol=1e-4)
    np.testing.assert_allclose(out[5].item(), 0.0, atol=1e-4)
    np.testing.assert_allclose(out[6:10].numpy(), np.full(4, 8 / 9), rtol=1e-4)  # NETC mean, 8 voxels + 1
    np.testing.assert_allclose(out[10:14].numpy(), np.full(4, 56 / 57), rtol=1e-4)  # ET mean
    np.testing.assert_allclose(out[14:18].numpy(), np.zeros(4), atol=1e-4)  # no SNFH
    assert out[-4:].tolist() == [1.0, 0.0, 1.0, 0.0]


def test_axis_is_linspace_also_while_exporting(monkeypatch):
    """The coordinate axis runs from -1 to 1 in ``size`` points, also in its export form (``arange``)."""
    cpu = torch.device("cpu")
    expected = {n: torch.linspace(-1.0, 1.0, n) for n in (1, 2, 3, 5)}
    for n, axis in expected.items():
        torch.testing.assert_close(_axis(n, cpu), axis)
    monkeypatch.setattr(torch.onnx, "is_in_onnx_export", lambda: True)
    for n, axis in expected.items():
        exported = _axis(n, cpu)
        assert exported.dtype == torch.float32
        torch.testing.assert_close(exported, axis)
    assert _axis(4, torch.device("meta")).device.type == "meta"
    x, logits = _random_case(4, shape=(3, 2, 5))
    out = TumourDescriptors(2, 5)(x, logits, None)
    np.testing.assert_allclose(out.double().numpy(), _reference(x, logits, None), rtol=2e-5, atol=2e-5)


def test_descriptors_stay_on_the_input_device():
    """Every intermediate (axes, flags) is created on the input's device."""
    x, logits = _random_case(5)
    out = TumourDescriptors(2, 5)(x.to("meta"), logits.to("meta"), None)
    assert out.device.type == "meta" and out.shape == (2, 17)
    assert _axis(3, torch.device("meta")).device.type == "meta"
