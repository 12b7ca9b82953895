"""ONNX Runtime inference: :func:`export_onnx` (``gliomics export-onnx``) writes a run's network as an ONNX graph with
dynamic batch and spatial sizes, and :class:`OnnxNetwork` runs that graph on the CPU in place of the torch module,
with the same forward passes (:mod:`~gliomics.inference.engine`: one pass or sliding windows, flip TTA).

Only the network comes from the ``.onnx`` file. The run's configuration, preprocessing, marker thresholds,
calibration and label minimums are read from the run folder as for the torch engine, so that there is one source of
each and a later ``gliomics calibrate`` applies without a new export. The graph's metadata records the digest of the
weights it was exported from; a run whose weights changed since is refused until it is exported again.

onnxruntime, onnx and onnxscript are the optional extra ``gliomics[onnx]``; they are imported only here, inside the
functions that need them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gliomics import __version__
from gliomics.constants import SEQUENCES
from gliomics.errors import CheckpointError, ConfigError, InputError
from gliomics.inference.engine import pad_multiple

logger = logging.getLogger(__name__)

#: Values of ``predict --engine``.
ENGINES: tuple[str, ...] = ("torch", "onnx")
#: The graph's file in a run folder, where ``gliomics predict --engine onnx`` reads it.
ONNX_FILE = "model.onnx"
#: Names of the graph's inputs: the ``B × S × spatial`` image and the ``B × S`` bool flags of the sequences present.
INPUTS: tuple[str, str] = ("image", "present")
#: Outputs other than the markers, in graph order, where the network gives them.
VOLUME_OUTPUTS: tuple[str, ...] = ("seg", "alpha", "pool_weights")
#: Largest difference (probabilities, CMAF and pooling weights) allowed between the graph and the network.
TOLERANCE = 1e-3
_META = "gliomics."


def _require(*modules: str) -> None:
    """Import ``modules`` (onnxruntime, onnx, onnxscript); one error line naming the extra if one is missing."""
    import importlib

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ConfigError(f"{name} is not installed: pip install 'gliomics[onnx]'") from None


def engine_settings(engine: str, device: str, precision: str) -> tuple[str, str]:
    """``--device`` and ``--precision`` for ``--engine``: unchanged for ``torch``; the CPU in fp32 for ``onnx``.

    Raises:
        ConfigError: an unknown engine; for ``onnx``, onnxruntime is missing or the options ask for CUDA or bf16.
    """
    if engine not in ENGINES:
        raise ConfigError(f"--engine: {engine!r} is not one of {', '.join(ENGINES)}")
    if engine == "torch":
        return device, precision
    _require("onnxruntime")
    if device not in ("auto", "cpu"):
        raise ConfigError(f"--engine onnx runs on the CPU (onnxruntime's CPUExecutionProvider), not --device {device}; "
                          "use --engine torch for the GPU")
    if precision == "bf16":
        raise ConfigError("--engine onnx computes in fp32; --precision bf16 applies to --engine torch")
    return "cpu", "fp32"


def weights_digest(model: nn.Module) -> str:
    """First 16 hex digits of the SHA-256 of a network's weights (names, dtypes, shapes and values)."""
    digest = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        shape = tuple(value.shape)
        value = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{value.dtype}:{shape}".encode())
        digest.update(value.view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:16]


def min_spatial_size(model: nn.Module, multiple: int) -> int:
    """Smallest spatial size of the exported graph: a multiple of ``multiple`` at which every Swin stage's feature
    map is larger than its attention window (MONAI shrinks the window of a smaller map, which is another graph)."""
    from gliomics.models.blocks.swin_branch import SwinBranch

    size = max(multiple, int(getattr(model, "min_size", 1)))
    for module in model.modules():
        if isinstance(module, SwinBranch):
            scale = module.patch_size * 2 ** (len(module.stages) - 1)  # the deepest stage attends at /2^stages
            size = max(size, scale * max(module.swin.window_size) + 1)
    return -(-size // multiple) * multiple


class _Outputs(nn.Module):
    """The network with its output dict as a tuple of tensors, in the order of ``names`` (markers by name)."""

    def __init__(self, model: nn.Module, names: Sequence[str], markers: Sequence[str]) -> None:
        super().__init__()
        self.model, self.names, self.markers = model, tuple(names), frozenset(markers)

    def forward(self, image: torch.Tensor, present: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(image, present)
        return tuple(out["markers"][n] if n in self.markers else out[n] for n in self.names)


def export_onnx(run: Path | str, out: Path | str | None = None, *, checkpoint: str = "best",
                check: bool = True) -> list[dict[str, Any]]:
    """Export the network of a run (its ``best.pt``), of a checkpoint file, or of every fold run of a K-fold folder.

    Each graph is written to ``model.onnx`` next to its checkpoint (where ``predict --engine onnx`` reads it), or to
    ``out`` for a single run. Returns one summary per graph (path, outputs, sizes, check, seconds).

    Raises:
        InputError: ``run`` does not exist, or ``out`` is given for a folder of fold runs.
        CheckpointError: a checkpoint is missing or does not match its model, or the graph disagrees with the network.
        ConfigError: onnx, onnxscript or onnxruntime is not installed.
    """
    from gliomics.runtime.checkpoint import checkpoint_file, fold_runs

    run = Path(run)
    if not run.exists():
        raise InputError(f"{run}: no such run folder or checkpoint file")
    _require("onnxruntime", "onnx", "onnxscript")
    folds = fold_runs(run)
    if folds and out is not None:
        raise InputError(f"{run}: a folder of fold runs is exported into each fold's folder ({ONNX_FILE}); drop --out")
    results = []
    for one in folds or [run]:
        path = checkpoint_file(one, checkpoint)
        target = Path(out) if out is not None else path.parent / ONNX_FILE
        results.append(export_checkpoint(path, target, check=check))
    return results


def export_checkpoint(path: Path, out: Path, *, check: bool = True) -> dict[str, Any]:
    """Export the network of checkpoint ``path`` to ``out``; see :func:`export_onnx`."""
    from gliomics.provenance import config_digest
    from gliomics.runtime.checkpoint import load_network

    start = time.perf_counter()
    model, config, _ = load_network(path)
    logger.info("exporting %s (%s) to %s", path, config.model.name, out)
    result = export_network(model, out, check=check, source=path, metadata={
        "model": config.model.name, "checkpoint": path.name, "config_sha256": config_digest(config)})
    result.update(checkpoint=str(path), model=config.model.name, seconds=round(time.perf_counter() - start, 1))
    return result


def export_network(model: nn.Module, out: Path | str, *, check: bool = True, source: Path | str | None = None,
                   metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """Export a gliomics network in eval mode (``model(image, present)`` returns the output dict) to ``out``,
    written atomically, with ``metadata`` added to the graph's own (prefixed ``gliomics.``).

    The graph takes a dynamic batch and spatial sizes that are multiples of
    :func:`~gliomics.inference.engine.pad_multiple` from :func:`min_spatial_size`. With ``check``, the graph is run
    by onnxruntime at two input sizes (one batch of two, with a sequence missing) and compared with the network
    before it is written. Returns the path, outputs, sizes and the differences found.

    Raises:
        CheckpointError: the graph disagrees with the network by more than :data:`TOLERANCE` (nothing written).
    """
    from gliomics.io.atomic import atomic_path

    out = Path(out)
    multiple = pad_multiple(model)
    low = min_spatial_size(model, multiple)
    # the graph is traced on the second (sizes of at least two multiples, which torch.export keeps symbolic, odd and
    # even, for the Swin stages that pad to whole windows) and checked on both
    shapes = [(1, (low, low + multiple, low)), (2, (low + multiple, low + 2 * multiple, low + 3 * multiple))]
    inputs = [_example(b, int(getattr(model, "in_channels", len(SEQUENCES))), s, seed=k)
              for k, (b, s) in enumerate(shapes)]
    with torch.inference_mode():
        expected = [_as_dict(model(*x)) for x in inputs]
    markers = list(expected[0]["markers"] or {})
    names = [n for n in VOLUME_OUTPUTS if expected[0].get(n) is not None]
    names = [*names[:1], *markers, *names[1:]]
    program = _trace(_Outputs(model, names, markers).eval(), inputs[1], multiple, low)
    program.model.metadata_props.update({_META + k: v for k, v in {
        **(metadata or {}), "version": __version__, "weights_sha256": weights_digest(model),
        "outputs": json.dumps(names), "markers": json.dumps(markers), "size_multiple": str(multiple),
        "min_size": str(low), "torch": torch.__version__}.items()})
    result = {"path": str(out), "outputs": names, "size_multiple": multiple, "min_size": low, "checked": []}
    with atomic_path(out) as tmp:
        program.save(tmp, external_data=False)
        if check:
            network = OnnxNetwork(tmp)
            for x, ref in zip(inputs, expected):
                shape = "×".join(str(s) for s in x[0].shape[2:])
                try:
                    with torch.inference_mode():
                        diff = max_difference(ref, network(*x))
                except Exception as exc:  # onnxruntime's own classes: the graph does not run at this size
                    first = (str(exc).splitlines() or [""])[0][:200]
                    raise CheckpointError(f"{source or out}: the exported graph fails at input size {shape} (batch "
                                          f"{x[0].shape[0]}): {first}; {out} not written") from exc
                if diff > TOLERANCE:
                    raise CheckpointError(f"{source or out}: the exported graph disagrees with the network at input "
                                          f"size {shape} (batch {x[0].shape[0]}): difference {diff:.2g} > "
                                          f"{TOLERANCE:g}; {out} not written")
                result["checked"].append({"shape": list(x[0].shape), "max_difference": diff})
    return result


def _example(batch: int, channels: int, spatial: Sequence[int], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A random image and its presence flags; the last case of a batch of several lacks its third sequence."""
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, channels, *spatial, generator=generator)
    present = torch.ones(batch, channels, dtype=torch.bool)
    if batch > 1 and channels > 2:
        present[-1, 2] = False
    return image, present


def _trace(module: nn.Module, example: tuple[torch.Tensor, torch.Tensor], multiple: int, low: int):
    """``torch.onnx.export`` (the dynamo exporter) with a dynamic batch and spatial sizes ``multiple × k`` from
    ``low``; returns the ``ONNXProgram``."""
    from torch.export import Dim

    batch = Dim("batch", min=1, max=1024)
    spatial = {2 + i: multiple * Dim(name, min=low // multiple, max=max(1024 // multiple, low // multiple + 1))
               for i, name in enumerate(("depth", "height", "width")[: example[0].ndim - 2])}
    quiet = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript", "torch.onnx")]
    levels = [log.level for log in quiet]
    try:
        for log in quiet:  # their passes log every rewrite at INFO
            log.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.onnx.export(module, example, None, dynamo=True, input_names=list(INPUTS),
                                     output_names=list(module.names), verbose=False,
                                     dynamic_shapes={"image": {0: batch, **spatial}, "present": {0: batch}})
    finally:
        for log, level in zip(quiet, levels):
            log.setLevel(level)


def _as_dict(out: dict[str, Any]) -> dict[str, Any]:
    return {"seg": out.get("seg"), "markers": out.get("markers"), "alpha": out.get("alpha"),
            "pool_weights": out.get("pool_weights")}


def max_difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Largest difference between two output dicts: segmentation softmax, marker probabilities, CMAF and pooling
    weights."""
    diffs = [0.0]
    if a.get("seg") is not None:
        diffs.append(float((torch.softmax(a["seg"].float(), 1) - torch.softmax(b["seg"].float(), 1)).abs().max()))
    for m, v in (a.get("markers") or {}).items():
        diffs.append(float((torch.sigmoid(v.float()) - torch.sigmoid(b["markers"][m].float())).abs().max()))
    for key in ("alpha", "pool_weights"):
        if a.get(key) is not None:
            diffs.append(float((a[key].float() - b[key].float()).abs().max()))
    return max(diffs)


class OnnxNetwork:
    """A graph written by :func:`export_onnx`, run by onnxruntime on the CPU and called like the torch network:
    ``network(image, present)`` with torch tensors returns the output dict (``seg``, ``markers``, ``alpha``,
    ``pool_weights``, ``deep_supervision``) in fp32, on the image's device.

    Args:
        path: The ``.onnx`` file.
        threads: onnxruntime's intra-op threads (default: torch's thread count).

    Raises:
        CheckpointError: the file is not a graph written by ``gliomics export-onnx``.
    """

    training = False

    def __init__(self, path: Path | str, threads: int | None = None) -> None:
        _require("onnxruntime")
        import onnxruntime as ort

        self.path = Path(path)
        self.threads = int(threads or torch.get_num_threads())
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own classes for unreadable or invalid graphs
            first = (str(exc).splitlines() or [""])[0][:200]
            raise CheckpointError(f"{self.path}: not a readable ONNX model ({first})") from exc
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        try:
            self.outputs = json.loads(self.metadata[_META + "outputs"])
            self.markers = json.loads(self.metadata[_META + "markers"])
            self.size_multiple = int(self.metadata[_META + "size_multiple"])
            self.min_size = int(self.metadata[_META + "min_size"])
        except (KeyError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: not a graph written by gliomics export-onnx (no {exc} in its "
                                  "metadata)") from None
        self.size_divisor = self.size_multiple // 2
        self.version = ort.__version__

    def eval(self) -> OnnxNetwork:
        return self

    def hardware(self) -> dict[str, Any]:
        """The engine and its threads, for the ``hardware`` of a prediction record."""
        return {"engine": f"onnxruntime {self.version}", "threads": self.threads}

    def __call__(self, image: torch.Tensor, present: torch.Tensor | None = None) -> dict[str, Any]:
        from gliomics.models.blocks.cmaf import check_present

        spatial = tuple(int(s) for s in image.shape[2:])
        if any(s < self.min_size or s % self.size_multiple for s in spatial):
            raise InputError(f"{self.path}: takes spatial sizes that are multiples of {self.size_multiple} from "
                             f"{self.min_size}, got {spatial}; predict this case with --engine torch")
        present = check_present(present, image, image.shape[1])
        feeds = {INPUTS[0]: np.ascontiguousarray(image.detach().to("cpu", torch.float32).numpy()),
                 INPUTS[1]: np.ascontiguousarray(present.cpu().numpy())}
        values = dict(zip(self.outputs, self.session.run(self.outputs, feeds)))

        def tensor(name: str) -> torch.Tensor | None:
            return torch.from_numpy(values[name]).to(image.device) if name in values else None

        return {"seg": tensor("seg"), "deep_supervision": [],
                "markers": {m: tensor(m) for m in self.markers} if self.markers else None,
                "alpha": tensor("alpha"), "pool_weights": tensor("pool_weights")}


def onnx_network(checkpoint: Path, model: nn.Module, threads: int | None = None) -> OnnxNetwork:
    """The graph exported from checkpoint ``checkpoint`` (``model.onnx`` next to it), whose network is ``model``.

    Raises:
        CheckpointError: no graph (run ``gliomics export-onnx`` first), or one exported from other weights.
    """
    from gliomics.runtime.checkpoint import BEST, LAST

    path = checkpoint.parent / ONNX_FILE
    source = checkpoint.parent if checkpoint.name == BEST or (checkpoint.name == LAST and not
                                                               (checkpoint.parent / BEST).is_file()) else checkpoint
    if not path.is_file():
        raise CheckpointError(f"{path}: not found; --engine onnx needs the run's exported network: run "
                              f"`gliomics export-onnx {source}` first")
    network = OnnxNetwork(path, threads)
    exported = network.metadata.get(_META + "weights_sha256")
    if exported != weights_digest(model):
        raise CheckpointError(f"{path}: exported from other weights than {checkpoint} (the run changed since); run "
                              f"`gliomics export-onnx {source}` again")
    return network
