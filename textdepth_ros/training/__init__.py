"""Pieces of `textdepth train` (loss, schedule, distributed set-up, resume state,
evaluation, logging), kept out of train.py so the loop stays readable."""
