"""MGMT-Net: joint glioma subregion segmentation and molecular marker prediction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from monai.networks.blocks import Convolution
from torch import nn

from gliomics.constants import MARKERS, NUM_CLASSES, SEQUENCES
from gliomics.models.blocks.attention_pool import POOLING_MODES, AttentionPooling, tumour_gate
from gliomics.models.blocks.cmaf import CMAF, ConcatFusion
from gliomics.models.blocks.cnn_branch import CNNBranch, DeepCNNBranch
from gliomics.models.blocks.decoder import SegDecoder
from gliomics.models.blocks.descriptors import TumourDescriptors
from gliomics.models.blocks.layers import DEFAULT_ACT
from gliomics.models.blocks.marker_head import MarkerHeads
from gliomics.models.blocks.swin_branch import SwinBranch
from gliomics.models.nets._base import MultiSequenceNet

__all__ = ["ENCODERS", "FUSIONS", "MGMTNet"]

FUSIONS: tuple[str, ...] = ("cmaf", "concat")
ENCODERS: tuple[str, ...] = ("hybrid", "cnn")


class MGMTNet(MultiSequenceNet):
    """MGMT-Net from Abdusalomov et al., "From Anatomy to Genomics Using a Multi-Task Deep Learning Approach for
    Comprehensive Glioma Profiling", Bioengineering 2025, <https://doi.org/10.3390/bioengineering12090979>.

    CMAF fuses the sequences voxel-wise; a hybrid encoder runs a CNN branch (skips at /1, /2, /4) and a Swin branch
    in parallel and fuses their /8 outputs by a 1x1x1 conv into ``F_ENC``; a U-Net decoder gives the segmentation
    logits; the soft tumour probability gates ``F_ENC``, attention pooling makes one vector per case and one head
    per marker gives a logit.

    ``forward`` returns a dict (the same contract as the baselines in :mod:`gliomics.models.nets.baselines`):

    - ``seg``: ``B x out_channels x spatial`` logits (softmax at inference).
    - ``deep_supervision``: list of logits at their native resolution, finest first (/2, /4), in training mode
      with ``deep_supervision=True``; otherwise an empty list. The loss resizes the target to each head.
    - ``markers``: dict marker -> ``B`` logits, for every name in ``markers``.
    - ``alpha``: CMAF weights ``B x S x spatial`` (sum to 1 over S, 0 for missing sequences), ``None`` for
      ``fusion="concat"``.
    - ``pool_weights``: attention-pooling weights ``B x 1 x spatial/8`` (sum to 1 per case; uniform for "gap").

    The tumour gate is computed from *detached* segmentation probabilities: the marker loss, driven by few and
    noisy case-level labels, must not redraw the segmentation to suit itself; voxel labels supervise the
    segmentation and the shared encoder still learns from both tasks.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: number of input sequences, in the order of ``SEQUENCES``.
        out_channels: number of segmentation classes, background first.
        feature_size: channels of the CNN stem; the CNN stages have 2x, 4x and 8x as many and ``F_ENC`` 8x.
        embed_channels: C', the channels of each sequence's CMAF embedding and of the fused volume.
        swin_feature_size: Swin embedding dimension; defaults to ``feature_size``.
        swin_depths: Swin blocks per stage, length 2 (/2, /4) or 3 (/2, /4, /8).
        swin_heads: attention heads per Swin stage.
        window_size: Swin attention window.
        fusion: ``"cmaf"`` or ``"concat"`` (ablation).
        encoder: ``"hybrid"`` (CNN + Swin) or ``"cnn"`` (ablation: a deeper CNN, with the widths of the Swin
            stages, in place of the Swin branch; see :class:`~gliomics.models.blocks.cnn_branch.DeepCNNBranch`).
        pooling: ``"attention"`` or ``"gap"`` (ablation).
        mask_gating: gate ``F_ENC`` by the soft tumour probability before pooling.
        attention_gate: attention gates on the decoder skips.
        deep_supervision: auxiliary segmentation heads at /4 and /2 in training mode.
        dropout_prob: dropout inside the residual conv blocks and the transformer blocks.
        fusion_dropout_prob: dropout of the CMAF attention MLP (0.2 in the paper).
        marker_dropout_prob: dropout of each marker head (0.3 in the paper).
        marker_hidden: hidden width of each marker head.
        deep_cnn_blocks: residual blocks per stage of the deeper CNN of ``encoder="cnn"``.
        drop_path_rate: stochastic depth of the Swin branch.
        norm_name: normalisation of every conv block, in MONAI's ``(name, args)`` form; InstanceNorm by default
            because 3D batches hold 1-2 patches (see :class:`~gliomics.models.blocks.cmaf.CMAF`).
        markers: marker names, one head each; defaults to ``MARKERS``.
        descriptors: also feed the marker heads hand-crafted tumour descriptors of the predicted segmentation
            (:class:`~gliomics.models.blocks.descriptors.TumourDescriptors`); a gliomics addition, off in the
            paper preset.
        sequence_affine: learn the scale and shift of the shared sequence embedding per sequence, so that fused
            features keep which sequence they came from (see :class:`~gliomics.models.blocks.cmaf.SequenceEmbedding`);
            ``False`` is the paper's fully shared embedding.
        fusion_residual: add a concatenation path to CMAF's weighted sum (see
            :class:`~gliomics.models.blocks.cmaf.CMAF`, ``residual``); ``False`` in the paper preset.
    """

    #: Every spatial size of the input must be a multiple of this (three halvings in the encoder).
    size_divisor: int = 8
    #: Smallest spatial size: instance normalisation needs more than one voxel at /8.
    min_size: int = 16

    def __init__(
        self,
        spatial_dims: int = 3,
        in_channels: int = len(SEQUENCES),
        out_channels: int = NUM_CLASSES,
        feature_size: int = 48,
        embed_channels: int = 16,
        swin_feature_size: int | None = None,
        swin_depths: Sequence[int] = (2, 2, 2),
        swin_heads: Sequence[int] = (3, 6, 12),
        window_size: int = 8,
        fusion: str = "cmaf",
        encoder: str = "hybrid",
        pooling: str = "attention",
        mask_gating: bool = True,
        attention_gate: bool = True,
        deep_supervision: bool = True,
        dropout_prob: float = 0.0,
        fusion_dropout_prob: float = 0.2,
        marker_dropout_prob: float = 0.3,
        marker_hidden: int = 64,
        deep_cnn_blocks: int = 3,
        drop_path_rate: float = 0.0,
        norm_name: str | tuple = ("instance", {"affine": True}),
        markers: Sequence[str] = MARKERS,
        descriptors: bool = False,
        sequence_affine: bool = True,
        fusion_residual: bool = False,
    ) -> None:
        super().__init__(spatial_dims, in_channels)
        self._check_args(out_channels, feature_size, embed_channels, dropout_prob, fusion, encoder, pooling)

        self.out_channels = out_channels
        self.mask_gating = mask_gating
        self.markers = tuple(markers)

        enc_channels = self._build_encoder(
            spatial_dims, in_channels, feature_size, embed_channels, swin_feature_size, swin_depths, swin_heads,
            window_size, fusion, encoder, dropout_prob, fusion_dropout_prob, deep_cnn_blocks, drop_path_rate,
            norm_name, sequence_affine, fusion_residual,
        )
        self._build_heads(
            spatial_dims, in_channels, out_channels, enc_channels, pooling, attention_gate, deep_supervision,
            dropout_prob, marker_dropout_prob, marker_hidden, norm_name, descriptors,
        )

    @staticmethod
    def _check_args(
        out_channels: int,
        feature_size: int,
        embed_channels: int,
        dropout_prob: float,
        fusion: str,
        encoder: str,
        pooling: str,
    ) -> None:
        """Raise ``ValueError`` for a constructor argument out of range or not among the allowed choices."""
        if out_channels < 2:
            raise ValueError(f"out_channels must be at least 2 (background + one label), got {out_channels}.")
        for name, value in (("feature_size", feature_size), ("embed_channels", embed_channels)):
            if value < 1:
                raise ValueError(f"{name} must be positive, got {value}.")
        if not 0.0 <= dropout_prob < 1.0:
            raise ValueError(f"dropout_prob must be in [0, 1), got {dropout_prob}.")
        for name, value, allowed in (("fusion", fusion, FUSIONS), ("encoder", encoder, ENCODERS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}.")
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}.")

    def _build_encoder(
        self,
        spatial_dims: int,
        in_channels: int,
        feature_size: int,
        embed_channels: int,
        swin_feature_size: int | None,
        swin_depths: Sequence[int],
        swin_heads: Sequence[int],
        window_size: int,
        fusion: str,
        encoder: str,
        dropout_prob: float,
        fusion_dropout_prob: float,
        deep_cnn_blocks: int,
        drop_path_rate: float,
        norm_name: str | tuple,
        sequence_affine: bool,
        fusion_residual: bool,
    ) -> int:
        """Build the sequence fusion, the CNN and context branches and their 1x1x1 fusion, in state_dict order.

        Returns the channels of ``F_ENC``.
        """
        if fusion == "cmaf":
            self.fusion: nn.Module = CMAF(
                spatial_dims, in_channels, embed_channels, dropout_prob=fusion_dropout_prob, norm_name=norm_name,
                sequence_affine=sequence_affine, residual=fusion_residual,
            )
        else:
            self.fusion = ConcatFusion(spatial_dims, in_channels, embed_channels, norm_name=norm_name,
                                       sequence_affine=sequence_affine)
        self.cnn = CNNBranch(spatial_dims, embed_channels, feature_size, norm_name=norm_name, dropout_prob=dropout_prob)
        enc_channels = self.cnn.out_channels
        self.encoder_kind = encoder
        if encoder == "hybrid":
            self.context: nn.Module = SwinBranch(
                spatial_dims, embed_channels, enc_channels, feature_size=swin_feature_size or feature_size,
                depths=swin_depths, num_heads=swin_heads, window_size=window_size, dropout_prob=dropout_prob,
                drop_path_rate=drop_path_rate, norm_name=norm_name,
            )
        else:
            self.context = DeepCNNBranch(
                spatial_dims, embed_channels, enc_channels, feature_size=swin_feature_size or feature_size,
                blocks_per_stage=deep_cnn_blocks, norm_name=norm_name, dropout_prob=dropout_prob,
            )
        self.encoder_fusion = Convolution(
            spatial_dims, 2 * enc_channels, enc_channels, kernel_size=1, act=DEFAULT_ACT, norm=norm_name
        )
        return enc_channels

    def _build_heads(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        enc_channels: int,
        pooling: str,
        attention_gate: bool,
        deep_supervision: bool,
        dropout_prob: float,
        marker_dropout_prob: float,
        marker_hidden: int,
        norm_name: str | tuple,
        descriptors: bool,
    ) -> None:
        """Build the segmentation decoder, the pooling, the optional descriptors and the marker heads, in that order."""
        self.decoder = SegDecoder(
            spatial_dims,
            enc_channels,
            self.cnn.skip_channels,
            out_channels,
            attention_gate=attention_gate,
            deep_supervision=deep_supervision,
            norm_name=norm_name,
            dropout_prob=dropout_prob,
        )
        self.pool = AttentionPooling(spatial_dims, enc_channels, mode=pooling)
        self.descriptors = TumourDescriptors(in_channels, out_channels) if descriptors else None
        head_in = enc_channels + (self.descriptors.out_features if self.descriptors is not None else 0)
        self.marker_heads = MarkerHeads(head_in, marker_hidden, marker_dropout_prob, self.markers)

    def _size_error(self, size: tuple[int, ...]) -> str:
        """The message of :meth:`check_input` for an unusable spatial ``size``, with a hint on how to pad."""
        return (
            f"every spatial size must be a multiple of {self.size_divisor} and at least {self.min_size}, "
            f"got {size}; pad or crop the input (e.g. monai.transforms.DivisiblePad(k={self.size_divisor}))."
        )

    def encode(self, x: torch.Tensor, present: torch.Tensor | None = None) -> dict[str, Any]:
        """Fuse and encode: ``features`` (``F_ENC`` at /8), ``skips`` (/1, /2, /4) and ``alpha``."""
        self.check_input(x)
        fused, alpha = self.fusion(x, present)
        skips, local = self.cnn(fused)
        context = self.context(fused)
        features = self.encoder_fusion(torch.cat([local, context], dim=1))
        return {"features": features, "skips": skips, "alpha": alpha}

    def decode(self, encoded: dict[str, Any]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Segmentation logits and deep-supervision logits (finest first) from the output of :meth:`encode`."""
        return self.decoder(encoded["features"], encoded["skips"])

    def predict_markers(
        self,
        features: torch.Tensor,
        seg_logits: torch.Tensor | None = None,
        x: torch.Tensor | None = None,
        present: torch.Tensor | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Marker logits and pooling weights from ``F_ENC``, reusing already computed features.

        Args:
            features: ``F_ENC`` from :meth:`encode`.
            seg_logits: the segmentation logits; required when ``mask_gating`` or ``descriptors`` is on.
            x: the input, required with ``descriptors``.
            present: the sequence flags, used by ``descriptors``.
        """
        gate = None
        if self.mask_gating:
            if seg_logits is None:
                raise ValueError("mask_gating needs the segmentation logits; pass seg_logits.")
            gate = tumour_gate(seg_logits.detach(), features.shape[2:])
        z, weights = self.pool(features, gate)
        if self.descriptors is not None:
            if seg_logits is None or x is None:
                raise ValueError("descriptors need the input and the segmentation logits; pass x and seg_logits.")
            z = torch.cat([z, self.descriptors(x, seg_logits, present)], dim=1)
        return self.marker_heads(z), weights

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> dict[str, Any]:
        """Run both tasks in one pass.

        Args:
            x: ``B x in_channels x spatial``, sequences in the order of ``SEQUENCES``.
            present: ``B x in_channels`` bool mask of the sequences that exist; ``None`` means all.

        Returns:
            the output dict described in the class docstring.
        """
        encoded = self.encode(x, present)
        seg, aux = self.decode(encoded)
        markers, weights = self.predict_markers(encoded["features"], seg, x, present)
        return self._output(seg, markers, aux, encoded["alpha"], weights)
