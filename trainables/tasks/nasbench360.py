"""NAS-Bench-360 tasks other than ``spherical`` (Tu et al., NeurIPS 2022), read as published."""
