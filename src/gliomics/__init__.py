"""gliomics: glioma segmentation and molecular markers from multi-parametric MRI."""

import os as _os

# OpenMP threads that wait for work sleep instead of spinning: on a machine shared with other processes a spinning
# thread burns the core its partner needs (set OMP_WAIT_POLICY=ACTIVE to spin). Read when torch first loads.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
