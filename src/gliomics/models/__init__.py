"""Networks: MGMT-Net, its building blocks, MONAI baselines and the model registry.

Build models with :func:`gliomics.models.registry.create_model`.
"""
