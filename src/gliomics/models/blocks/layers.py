"""Layer settings and builders shared by the MGMT-Net blocks."""

from __future__ import annotations

from monai.networks.blocks import UnetResBlock

__all__ = ["DEFAULT_NORM", "residual_block"]

#: Normalisation of every conv block, in MONAI's ``(name, args)`` form: InstanceNorm, because 3D batches hold 1-2
#: patches (see :class:`~gliomics.models.blocks.cmaf.CMAF`).
DEFAULT_NORM: tuple = ("instance", {"affine": True})


def residual_block(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    norm_name: str | tuple = DEFAULT_NORM,
    dropout_prob: float = 0.0,
) -> UnetResBlock:
    """A residual 3x3x3 conv-norm-ReLU block at unchanged resolution (MONAI ``UnetResBlock``, whose 1x1x1
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
        act_name="relu",
        dropout=dropout_prob or None,
    )
