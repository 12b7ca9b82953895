"""Building blocks of MGMT-Net (fusion, encoder branches, decoder, pooling, marker heads)."""
