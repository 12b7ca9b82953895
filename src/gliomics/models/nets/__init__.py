"""Complete networks: MGMT-Net and adapters around MONAI baselines, all returning the same output dict."""
