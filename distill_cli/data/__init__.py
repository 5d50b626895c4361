"""Datasets: ``sources`` reads what the user names, ``prepared`` turns it into tokenized, cached splits.
``demo_intents.json`` is the small built-in dataset behind ``make demo``."""
