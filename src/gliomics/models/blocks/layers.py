"""Layer settings and builders shared by the MGMT-Net blocks."""

from __future__ import annotations

from monai.networks.blocks import UnetResBlock

__all__ = ["DEFAULT_ACT", "DEFAULT_NORM", "LEAKY_SLOPE", "residual_block"]

#: Normalisation of every conv block, in MONAI's ``(name, args)`` form: InstanceNorm, because 3D batches hold 1-2
#: patches (see :class:`~gliomics.models.blocks.cmaf.CMAF`).
DEFAULT_NORM: tuple = ("instance", {"affine": True})

#: Slope of the leaky ReLU of every conv block (nnU-Net's 0.01).
LEAKY_SLOPE = 0.01
#: Activation of every conv block, in MONAI's ``(name, args)`` form. A leaky ReLU rather than a ReLU: after instance
#: normalisation a plain ReLU zeroes whole regions of a channel (e.g. every tumour voxel), and with the few channels of
#: the CPU preset the gradient that should grow features for the small tumour classes then never reaches them; the
#: network settles for "whole lesion = oedema".
DEFAULT_ACT: tuple = ("leakyrelu", {"negative_slope": LEAKY_SLOPE, "inplace": True})


def residual_block(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    norm_name: str | tuple = DEFAULT_NORM,
    dropout_prob: float = 0.0,
) -> UnetResBlock:
    """A residual 3x3x3 conv-norm-leaky-ReLU block at unchanged resolution (MONAI ``UnetResBlock``, whose 1x1x1
    projection carries the residual when the channels change).

    Args:
        spatial_dims: number of spatial dimensions.
        in_channels: channels of the input.
        out_channels: channels of the output.
        norm_name: normalisation, in MONAI's ``(name, args)`` form.
        dropout_prob: dropout inside the block; 0 builds none.
    """
    return UnetResBlock(
        spatial_dims,
        in_channels,
        out_channels,
        kernel_size=3,
        stride=1,
        norm_name=norm_name,
        act_name=DEFAULT_ACT,
        dropout=dropout_prob or None,
    )
