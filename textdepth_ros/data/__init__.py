"""Datasets: NYU Depth v2 (BTS/PixelFormer file layout and the labeled .mat), SUN RGB-D,
per-image scene text, the training augmentations, and a synthetic NYU-layout generator."""
