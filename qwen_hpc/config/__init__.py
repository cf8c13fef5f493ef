"""Typed config schemas (dataclasses) mirrored by the YAML tree in `config/`."""
