"""Experiments that train models here and measure them (docs/text-prior-experiment.md)."""
