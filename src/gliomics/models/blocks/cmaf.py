"""Cross-Modality Attention Fusion (CMAF) and the concatenation ablation that replaces it."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.layers import Conv
from torch import nn

from gliomics.constants import SEQUENCES
from gliomics.models.blocks.layers import DEFAULT_ACT, DEFAULT_NORM, LEAKY_SLOPE

__all__ = ["CMAF", "ConcatFusion", "SequenceEmbedding", "broadcast_present", "check_present", "exporting"]


def exporting() -> bool:
    """True while ``torch.onnx.export`` traces the network. The blocks then take forms that hold for every input of
    the exported graph and give the same values: the masked form of the branches on which sequences are present (the
    check that every case has one is left to the caller of the graph), and ops that ``torch.export`` keeps symbolic in
    the spatial sizes (:mod:`gliomics.inference.onnx_engine`)."""
    return torch.onnx.is_in_onnx_export()


def check_present(present: torch.Tensor | None, x: torch.Tensor, num_sequences: int) -> torch.Tensor:
    """Validate the ``present`` mask of a batch and return it as a ``B x S`` bool tensor on ``x.device``.

    Args:
        present: which sequences exist per case (``B x S``, bool or 0/1); ``None`` means all.
        x: the input batch, ``B x S x spatial``.
        num_sequences: the number of sequences ``S``.

    Raises:
        ValueError: when the shape is wrong or a case has no sequence at all.
    """
    batch = x.shape[0]
    if present is None:
        return torch.ones(batch, num_sequences, dtype=torch.bool, device=x.device)
    present = torch.as_tensor(present, device=x.device)
    if present.shape != (batch, num_sequences):
        raise ValueError(
            f"present must have shape (batch, {num_sequences}) = ({batch}, {num_sequences}) with one column per "
            f"sequence in {SEQUENCES}, got {tuple(present.shape)}."
        )
    present = present.bool()
    if not exporting() and not bool(present.any(dim=1).all()):
        empty = torch.nonzero(~present.any(dim=1)).flatten().tolist()
        raise ValueError(f"every case needs at least one present sequence; cases {empty} in the batch have none.")
    return present


def broadcast_present(present: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """View a ``B x S`` mask of present sequences as ``B x S x 1 x ...`` so that it broadcasts against ``like``.

    Args:
        present: ``B x S`` mask, e.g. from :func:`check_present`.
        like: a tensor whose first two axes are ``B x S`` (inputs, embeddings, fusion logits).
    """
    return present.view(*present.shape, *([1] * (like.ndim - 2)))


class SequenceEmbedding(nn.Module):
    """One *shared* conv-norm-leaky-ReLU applied to every 1-channel sequence, giving ``B x S x C' x spatial``.

    With ``sequence_affine=True`` (the default) the normalisation's scale and shift are learnt per sequence
    (conditional normalisation) while the convolution stays shared. A fully shared embedding maps equal intensities of
    different sequences to equal features, so that ``sum_m alpha_m F_m`` cannot tell "bright on T1ce" (enhancing
    tumour) from "bright on FLAIR" (oedema) except through ``alpha``; training then depends on the attention
    discovering that asymmetry by chance, and with some initialisations it never does and the tumour core is never
    segmented. A per-sequence scale and shift (2 C' parameters per sequence) keeps the identity of each sequence
    in its features at no cost in compute. ``sequence_affine=False`` is the paper's fully shared embedding.

    Args:
        spatial_dims: number of spatial dimensions.
        embed_channels: C', the channels of each sequence's embedding.
        kernel_size: kernel of the shared convolution (3 in the paper).
        norm_name: normalisation, in MONAI's ``(name, args)`` form.
        num_sequences: S; needed for ``sequence_affine``.
        sequence_affine: learn the normalisation's affine per sequence.
    """

    def __init__(
        self, spatial_dims: int, embed_channels: int, kernel_size: int = 3, norm_name: str | tuple = DEFAULT_NORM,
        num_sequences: int = len(SEQUENCES), sequence_affine: bool = True,
    ) -> None:
        super().__init__()
        if embed_channels < 1:
            raise ValueError(f"embed_channels must be positive, got {embed_channels}.")
        self.embed_channels = embed_channels
        self.sequence_affine = sequence_affine
        self.fused_norm = False
        if sequence_affine:
            name, args = (norm_name, {}) if isinstance(norm_name, str) else (norm_name[0], dict(norm_name[1]))
            args["affine"] = False
            # with instance normalisation, forward applies the norm and the per-sequence affine as one group norm;
            # the convolution's own (parameter-free) norm stays in the module so that checkpoints keep their keys
            self.fused_norm = name.lower() == "instance"
            self.conv = Convolution(spatial_dims, 1, embed_channels, kernel_size=kernel_size, act=None,
                                    norm=(name, args), adn_ordering="N")
            self.norm_eps = float(args.get("eps", 1e-5))
            self.weight = nn.Parameter(torch.ones(num_sequences, embed_channels))
            self.bias = nn.Parameter(torch.zeros(num_sequences, embed_channels))
        else:
            self.conv = Convolution(spatial_dims, 1, embed_channels, kernel_size=kernel_size, act=DEFAULT_ACT,
                                    norm=norm_name, adn_ordering="NDA")

    def forward(self, x: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b, s = x.shape[:2]
        # Zero missing sequences so that NaN or stale values in their slots can never leak through 0 * F.
        if exporting() or not bool(present.all()):
            x = torch.where(broadcast_present(present, x), x, torch.zeros_like(x))
        # Folding the sequences into the batch axis is what makes the embedding shared across sequences.
        x = x.reshape(b * s, 1, *x.shape[2:])
        if not (self.sequence_affine and self.fused_norm):
            f = self.conv(x)
            f = f.view(b, s, self.embed_channels, *f.shape[2:])
            if self.sequence_affine:
                shape = (1, s, self.embed_channels) + (1,) * (f.ndim - 3)
                f = F.leaky_relu(f * self.weight[:s].view(shape) + self.bias[:s].view(shape), LEAKY_SLOPE)
            return f
        # The instance normalisation and the per-sequence scale and shift in one op: a group norm with one group per
        # (sequence, channel) over B x S*C' channels is exactly that, and one pass over the largest tensor of the
        # network instead of three (norm, scale, shift).
        f = self.conv.conv(x)
        f = f.view(b, s * self.embed_channels, *f.shape[2:])
        f = F.group_norm(f, s * self.embed_channels, self.weight[:s].flatten(), self.bias[:s].flatten(),
                         eps=self.norm_eps)
        if exporting():
            # A missing sequence is a constant map, which the normalisation takes to exactly 0 in torch (its shift
            # remains); a runtime that sums the map plainly leaves rounding noise that 1/sqrt(eps) blows up to
            # features of ~0.1, and the CMAF weights of the present sequences would depend on that noise.
            ones = (1,) * (f.ndim - 2)
            keep = present.unsqueeze(-1).expand(b, s, self.embed_channels).reshape(b, -1, *ones)
            f = torch.where(keep, f, self.bias[:s].reshape(1, -1, *ones).to(f.dtype))
        f = F.leaky_relu_(f, LEAKY_SLOPE)
        return f.view(b, s, self.embed_channels, *f.shape[2:])


class _SequenceFusion(nn.Module):
    """What CMAF and its concatenation ablation share: the shared :class:`SequenceEmbedding` of every sequence,
    applied after validating the ``present`` mask.

    Args:
        spatial_dims: number of spatial dimensions.
        num_sequences: S, the number of input sequences.
        embed_channels: C', the channels of each embedding and of the fused output.
        norm_name: normalisation of the embedding, in MONAI's ``(name, args)`` form.
        sequence_affine: per-sequence scale and shift of the embedding (see :class:`SequenceEmbedding`).
    """

    def __init__(self, spatial_dims: int, num_sequences: int, embed_channels: int, norm_name: str | tuple,
                 sequence_affine: bool = True) -> None:
        super().__init__()
        if num_sequences < 1:
            raise ValueError(f"num_sequences must be positive, got {num_sequences}.")
        self.num_sequences = num_sequences
        self.out_channels = embed_channels
        self.embed = SequenceEmbedding(spatial_dims, embed_channels, norm_name=norm_name, num_sequences=num_sequences,
                                       sequence_affine=sequence_affine)

    def _embed(self, x: torch.Tensor, present: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the validated ``B x S`` mask and the embeddings ``B x S x C' x spatial``."""
        present = check_present(present, x, self.num_sequences)
        return present, self.embed(x, present)

    def _mixer(self, spatial_dims: int, norm_name: str | tuple) -> nn.Module:
        """A 1x1x1 conv-norm-leaky-ReLU from the S concatenated embeddings (S*C') back to C' channels."""
        return Convolution(spatial_dims, self.num_sequences * self.out_channels, self.out_channels, kernel_size=1,
                           act=DEFAULT_ACT, norm=norm_name)

    @staticmethod
    def _concatenate(present: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """``B x S*C' x spatial``: the embeddings side by side, those of missing sequences zeroed."""
        if not exporting() and bool(present.all()):
            return feats.flatten(1, 2)
        return (feats * broadcast_present(present, feats).to(feats.dtype)).flatten(1, 2)


class CMAF(_SequenceFusion):
    """Cross-Modality Attention Fusion of MGMT-Net, section 3.1 of Abdusalomov et al., "From Anatomy to Genomics
    Using a Multi-Task Deep Learning Approach for Comprehensive Glioma Profiling", Bioengineering 2025,
    <https://doi.org/10.3390/bioengineering12090979>.

    Each sequence is embedded by one shared 3x3x3 conv + norm + leaky ReLU into C' channels (with a per-sequence
    scale and shift of the normalisation unless ``sequence_affine=False``, see :class:`SequenceEmbedding`). At every
    voxel the S embeddings are concatenated (S*C') and a 1x1x1-conv MLP (S*C' -> hidden -> S, dropout after the first
    layer) gives logits; a softmax over the sequences gives weights ``alpha`` that sum to 1, and the output is
    ``sum_m alpha_m * F_m`` (C' channels). Missing sequences get a logit of -inf, hence ``alpha == 0`` exactly.

    Normalisation defaults to InstanceNorm rather than the paper's BatchNorm: 3D batches are 1-2 patches, where
    BatchNorm statistics are noisy and differ between training and inference, and with modality dropout the zeroed
    sequences would shift the batch statistics of the present ones. Instance statistics are per case and per
    sequence, so a missing sequence cannot affect the others. Pass ``norm_name="batch"`` for the paper's choice.

    Args:
        spatial_dims: number of spatial dimensions.
        num_sequences: S, the number of input sequences (``len(SEQUENCES)``).
        embed_channels: C', the channels of each embedding and of the fused output.
        hidden_channels: width of the attention MLP; defaults to ``max(C' // 2, 4)`` (the paper's "C'/2").
        dropout_prob: dropout after the first MLP layer (0.2 in the paper).
        norm_name: normalisation of the embedding, in MONAI's ``(name, args)`` form.
        sequence_affine: per-sequence scale and shift of the embedding; ``False`` is the paper's shared embedding.
        residual: add a concatenation path to the attention-weighted sum, ``sum_m alpha_m F_m + mix([F_1..F_S])``
            with ``mix`` a 1x1x1 conv-norm-leaky-ReLU (S*C' -> C'); ``False`` (the paper) outputs the sum alone.
            The sum is a convex combination of the S embeddings, so its C' channels can only carry what every
            sequence encodes in the same channels; with small C' (the CPU preset) the attention stays close to a
            fixed average and the contrast of single sequences (T1ce for enhancing tumour) is diluted. The residual
            path lets the encoder see every sequence's features, while ``alpha`` still weights the sum and is
            returned for the report.
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        num_sequences: int = len(SEQUENCES),
        embed_channels: int = 16,
        hidden_channels: int | None = None,
        dropout_prob: float = 0.2,
        norm_name: str | tuple = DEFAULT_NORM,
        sequence_affine: bool = True,
        residual: bool = False,
    ) -> None:
        super().__init__(spatial_dims, num_sequences, embed_channels, norm_name, sequence_affine)
        if not 0.0 <= dropout_prob < 1.0:
            raise ValueError(f"dropout_prob must be in [0, 1), got {dropout_prob}.")
        hidden_channels = max(embed_channels // 2, 4) if hidden_channels is None else hidden_channels
        if hidden_channels < 1:
            raise ValueError(f"hidden_channels must be positive, got {hidden_channels}.")
        conv = Conv[Conv.CONV, spatial_dims]
        self.attention = nn.Sequential(
            conv(num_sequences * embed_channels, hidden_channels, kernel_size=1),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout_prob),
            conv(hidden_channels, num_sequences, kernel_size=1),
        )
        self.mix = self._mixer(spatial_dims, norm_name) if residual else None

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Fuse the sequences.

        Args:
            x: ``B x S x spatial``, one channel per sequence in the order of ``SEQUENCES``.
            present: ``B x S`` bool mask of the sequences that exist; ``None`` means all.

        Returns:
            the fused features ``B x C' x spatial`` and the weights ``alpha``, ``B x S x spatial``.
        """
        present, feats = self._embed(x, present)  # B x S x C' x spatial
        logits = self.attention(feats.flatten(1, 2))
        if exporting() or not bool(present.all()):
            # -inf makes exp() exactly 0; check_present guarantees one finite logit per voxel, so no NaN can appear.
            logits = logits.masked_fill(~broadcast_present(present, logits), float("-inf"))
        alpha = torch.softmax(logits, dim=1)
        fused = (alpha.unsqueeze(2) * feats).sum(dim=1)
        if self.mix is not None:
            fused = fused + self.mix(self._concatenate(present, feats))
        return fused, alpha


class ConcatFusion(_SequenceFusion):
    """Ablation of CMAF: static fusion by concatenating the S embeddings and a 1x1x1 conv back to C' channels.

    It uses the same shared embedding as :class:`CMAF`, so that only the voxel-wise attention differs. Missing
    sequences have their embeddings zeroed. There are no fusion weights, so ``alpha`` is ``None``.

    Args:
        spatial_dims: number of spatial dimensions.
        num_sequences: S, the number of input sequences.
        embed_channels: C', the channels of each embedding and of the fused output.
        norm_name: normalisation, in MONAI's ``(name, args)`` form.
        sequence_affine: per-sequence scale and shift of the embedding (as in :class:`CMAF`).
    """

    def __init__(
        self,
        spatial_dims: int = 3,
        num_sequences: int = len(SEQUENCES),
        embed_channels: int = 16,
        norm_name: str | tuple = DEFAULT_NORM,
        sequence_affine: bool = True,
    ) -> None:
        super().__init__(spatial_dims, num_sequences, embed_channels, norm_name, sequence_affine)
        self.fuse = self._mixer(spatial_dims, norm_name)

    def forward(self, x: torch.Tensor, present: torch.Tensor | None = None) -> tuple[torch.Tensor, None]:
        present, feats = self._embed(x, present)
        return self.fuse(self._concatenate(present, feats)), None
