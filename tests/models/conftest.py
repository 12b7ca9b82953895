"""Shared fixtures of the model tests: tiny MGMT-Net settings and seeded inputs."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from gliomics.constants import SEQUENCES

#: The smallest MGMT-Net that still has every component (a few thousand parameters).
TINY_MGMTNET: dict[str, Any] = dict(
    feature_size=4, embed_channels=4, swin_depths=(1, 1), swin_heads=(1, 2), window_size=2, marker_hidden=8
)


@pytest.fixture
def tiny_kwargs() -> dict[str, Any]:
    return dict(TINY_MGMTNET)


@pytest.fixture
def image16() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(2, len(SEQUENCES), 16, 16, 16)
