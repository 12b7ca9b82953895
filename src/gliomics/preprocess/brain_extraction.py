"""Brain extraction (skull stripping) on the output grid: deepbet, HD-BET, the atlas's mask, or none.

The extractor runs once, on the T1 (T1ce without a T1) already co-registered and resampled onto the output grid
(RAS voxel order, 1 mm by default), and its mask applies to every sequence.

- ``deepbet``: the deepbet networks (Fisch et al. 2024, Computers in Biology and Medicine;
  https://github.com/wwu-mmll/deepbet, MIT); their TorchScript weights ship inside the ``deepbet`` wheel. Runs on the
  CPU, deterministically.
- ``hd-bet``: HD-BET 2 (Isensee et al. 2019, https://doi.org/10.1002/hbm.24750), when the ``HD_BET`` package is
  installed and its parameters are on disk; nothing is downloaded here.
- ``atlas``: the atlas's brain mask carried by the registration (with ``--skip-registration``: ``--mask`` or the
  reference's non-zero voxels).
- ``none``: no skull stripping; the mask is the head's foreground (Otsu threshold, holes filled), so only the air
  around the head is zeroed.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from gliomics.constants import SEQUENCES
from gliomics.errors import ConfigError, ImageError
from gliomics.io.sitk_images import array_of
from gliomics.preprocess.bias import head_mask

logger = logging.getLogger(__name__)

SKULL_STRIP_METHODS: tuple[str, ...] = ("deepbet", "hd-bet", "atlas", "none")
#: The extractors that are networks run on the T1.
NETWORK_METHODS: tuple[str, ...] = ("deepbet", "hd-bet")
#: Sequences the networks run on, in order of preference (they were trained on T1-weighted scans).
EXTRACTION_ORDER: tuple[str, ...] = ("t1n", "t1c")
#: deepbet's probability threshold (its default).
DEEPBET_THRESHOLD = 0.5
#: HD-BET 2's parameter file, below its parameter folder.
HDBET_CHECKPOINT = Path("fold_all") / "checkpoint_final.pth"


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (found without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a broken installation
        return False


def check_method(method: str) -> None:
    """Refuse an unknown method or a network that cannot run here, before any case is read.

    Raises:
        ConfigError: Unknown method; deepbet without its weights; HD-BET not installed or without its parameters.
    """
    if method not in SKULL_STRIP_METHODS:
        raise ConfigError(f"--skull-strip: expected one of {', '.join(SKULL_STRIP_METHODS)}, got {method!r}")
    if method == "deepbet":
        _deepbet_weights()
    elif method == "hd-bet":
        _hdbet_parameters()


def extraction_sequence(available: list[str] | tuple[str, ...]) -> str:
    """The sequence an extractor runs on: T1, else T1ce, else the first available."""
    return next((s for s in EXTRACTION_ORDER if s in available), available[0])


def network_mask(method: str, image: sitk.Image) -> np.ndarray:
    """The brain mask that ``method`` (``deepbet`` or ``hd-bet``) finds on ``image`` (boolean, nibabel order x, y, z).

    Raises:
        ConfigError: The network cannot run (see :func:`check_method`).
        ImageError: The network found no brain in the image.
    """
    if method == "deepbet":
        array = deepbet_mask(image)
    elif method == "hd-bet":
        array = hdbet_mask(image)
    else:
        raise ValueError(f"not a network extractor: {method!r}")
    if not array.any():
        raise ImageError(f"{method} found no brain in the image (try --skull-strip atlas)")
    return array


def head_foreground(image: sitk.Image) -> sitk.Image:
    """The ``none`` method's mask: the head (Otsu foreground, dilated by 2 voxels, holes filled)."""
    return sitk.Cast(head_mask(image), sitk.sitkUInt8)


# ---- deepbet ----------------------------------------------------------------------------------------------------


def _deepbet_weights() -> tuple[Path, Path]:
    if not installed("deepbet"):
        raise ConfigError("--skull-strip deepbet: the deepbet package is not installed (pip install deepbet==1.0.2), "
                          "or choose --skull-strip atlas")
    from deepbet.utils import DATA_PATH

    paths = (Path(DATA_PATH) / "models" / "model.pt", Path(DATA_PATH) / "models" / "bbox_model.pt")
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise ConfigError(f"--skull-strip deepbet: weights missing ({', '.join(missing)}); reinstall deepbet==1.0.2")
    return paths


@functools.lru_cache(maxsize=1)
def _deepbet_extractor():
    from deepbet.bet import BrainExtraction

    model, bbox_model = _deepbet_weights()
    with warnings.catch_warnings():  # torch.jit.load's deprecation notice, once per process: nothing to act on
        warnings.simplefilter("ignore", FutureWarning)
        return BrainExtraction(no_gpu=True, model_path=str(model), bbox_model_path=str(bbox_model))


@contextlib.contextmanager
def deterministic_torch() -> Iterator[None]:
    """Deterministic torch kernels for the duration (the thread count is the current one, kept as it is)."""
    import torch

    previous = torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.set_num_threads(threads)


def deepbet_mask(image: sitk.Image) -> np.ndarray:
    """deepbet's brain mask of a T1 on a RAS grid, as a boolean array in nibabel voxel order (x, y, z).

    Raises:
        ConfigError: deepbet is not installed or its weights are missing.
        ImageError: deepbet found no head in the image.
    """
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    if not np.allclose(np.abs(direction), np.eye(3)) or np.any(np.diag(direction) * (-1, -1, 1) < 0):
        raise ValueError("deepbet_mask needs an image in RAS voxel order")
    x = np.ascontiguousarray(array_of(image), dtype=np.float32)
    bet = _deepbet_extractor()
    try:
        with deterministic_torch():
            probability = bet.run_model(x)
            mask = bet.postprocess(probability > DEEPBET_THRESHOLD)
    except (AssertionError, ValueError) as exc:  # deepbet's own checks: no foreground for its bounding box
        raise ImageError(f"deepbet found no brain in the image ({exc or type(exc).__name__}); "
                         "try --skull-strip atlas") from exc
    return np.asarray(mask, dtype=bool)


# ---- HD-BET -----------------------------------------------------------------------------------------------------


def _hdbet_parameters() -> Path:
    install = ("install it with `pip install hd-bet` and fetch its parameters once (`hd-bet` does so on its first "
               "run, e.g. `hd-bet -i t1.nii.gz -o t1_bet.nii.gz -device cpu`), or choose --skull-strip deepbet")
    if not installed("HD_BET"):
        raise ConfigError(f"--skull-strip hd-bet: HD-BET is not installed; {install}")
    if not installed("HD_BET.hd_bet_prediction"):
        raise ConfigError(f"--skull-strip hd-bet: the installed HD-BET is not version 2; {install}")
    from HD_BET.paths import folder_with_parameter_files

    checkpoint = Path(folder_with_parameter_files) / HDBET_CHECKPOINT
    if not checkpoint.is_file():
        raise ConfigError(f"--skull-strip hd-bet: HD-BET's parameters are missing ({checkpoint}); {install}")
    return checkpoint


def hdbet_mask(image: sitk.Image) -> np.ndarray:
    """HD-BET 2's brain mask of a T1 (on the CPU, no test-time mirroring), as a boolean array (x, y, z).

    Raises:
        ConfigError: HD-BET is not installed or its parameters are missing.
    """
    _hdbet_parameters()
    import torch
    from HD_BET.hd_bet_prediction import get_hdbet_predictor, hdbet_predict

    with tempfile.TemporaryDirectory(prefix="gliomics-hdbet-") as tmp:
        source, target = Path(tmp) / "t1.nii.gz", Path(tmp) / "t1_brain.nii.gz"
        sitk.WriteImage(image, str(source))
        with deterministic_torch():  # also puts back the thread count, which HD-BET sets to every core
            predictor = get_hdbet_predictor(use_tta=False, device=torch.device("cpu"), verbose=False)
            hdbet_predict(str(source), str(target), predictor, keep_brain_mask=True,
                          compute_brain_extracted_image=False)
        mask = sitk.ReadImage(str(Path(tmp) / "t1_brain_bet.nii.gz"), sitk.sitkUInt8)
    return array_of(mask) > 0


# ---- the case's mask ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrainMask:
    """The brain mask of a case on the output grid.

    Attributes:
        method: The ``--skull-strip`` choice.
        source: What made it: ``deepbet``, ``hd-bet``, ``head foreground``, or for ``atlas`` the atlas's mask
            (``atlas``), a ``--mask`` file (``file``) or the reference's non-zero voxels (``nonzero``).
        sequence: The sequence the extractor ran on (None for ``atlas``).
        array: Boolean array on the output grid (nibabel order x, y, z).
    """

    method: str
    source: str
    sequence: str | None
    array: np.ndarray

    def describe(self) -> str:
        """E.g. ``deepbet on t1n`` or ``atlas (file)``."""
        return f"{self.source} on {self.sequence}" if self.sequence else f"{self.method} ({self.source})"


def brain_mask(method: str, moved: dict[str, sitk.Image], atlas_mask: np.ndarray, atlas_source: str) -> BrainMask:
    """The case's brain mask by ``method``, from the sequences on the output grid (before masking).

    Args:
        method: One of :data:`SKULL_STRIP_METHODS`.
        moved: Sequence → image resampled onto the output grid.
        atlas_mask: The ``atlas`` method's mask on the output grid.
        atlas_source: Where that mask came from (``atlas``, ``file`` or ``nonzero``).

    Raises:
        ConfigError: A network that cannot run here.
        ImageError: The network found no brain.
    """
    available = [s for s in SEQUENCES if s in moved]
    if method in NETWORK_METHODS:
        sequence = extraction_sequence(available)
        return BrainMask(method, method, sequence, network_mask(method, moved[sequence]))
    if method == "none":
        sequence = extraction_sequence(available)
        return BrainMask(method, "head foreground", sequence, array_of(head_foreground(moved[sequence])) > 0)
    if method == "atlas":
        return BrainMask(method, atlas_source, None, np.asarray(atlas_mask, dtype=bool))
    raise ConfigError(f"--skull-strip: expected one of {', '.join(SKULL_STRIP_METHODS)}, got {method!r}")
