"""Persistence: model files, model registry, labels journal; every write atomic."""
