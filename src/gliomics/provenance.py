"""What produced an output: package versions and the identity of a run's configuration, recorded in output JSONs so
that a number can be traced to the code, the libraries, the seed and the configuration behind it."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from gliomics import __version__

#: Libraries whose versions can change the numbers: distribution name → module name. A module already imported gives
#: its own ``__version__`` (torch's names its build, e.g. ``+cu130``); the others are read from the installed metadata.
_LIBRARIES = {"torch": "torch", "monai": "monai", "numpy": "numpy", "scipy": "scipy", "scikit-learn": "sklearn"}


def versions() -> dict[str, str]:
    """Versions of gliomics, Python and the numerical libraries."""
    out = {"gliomics": __version__, "python": platform.python_version()}
    for name, module_name in _LIBRARIES.items():
        module = sys.modules.get(module_name)
        try:
            out[name] = str(getattr(module, "__version__", None) or metadata.version(name))
        except metadata.PackageNotFoundError:
            continue
    return out


def config_digest(config: Any) -> str:
    """First 16 hex digits of the SHA-256 of a configuration in canonical JSON: equal digests, equal configs.

    Args:
        config: A pydantic model (e.g. :class:`~gliomics.config.RunConfig`) or a mapping of plain values.
    """
    data = config.model_dump(mode="json") if hasattr(config, "model_dump") else config
    if not isinstance(data, Mapping):
        raise TypeError(f"expected a pydantic model or a mapping, got {type(config).__name__}")
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
