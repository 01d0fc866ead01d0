"""Turning items into model inputs: crops, snippets, traces, splits, augmentation."""
