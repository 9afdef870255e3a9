"""Preference optimisation (DPO / MPO) as InternVL trains its releases: the losses (losses.py)."""
