"""Datasets for training: the paper's CIFAR split and a demo dataset generated on the fly.

Not imported by ``import timm_ignore``; import the submodules where needed.
"""
