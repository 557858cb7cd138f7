"""Datasets and loaders (real recordings and synthetic motion), converted to the package's conventions."""
