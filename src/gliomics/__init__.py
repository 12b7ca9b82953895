"""gliomics: glioma segmentation and molecular markers from multi-parametric MRI."""
__version__ = "0.1.0"
