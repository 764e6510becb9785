"""Helpers shared by modelshield's layers; not part of the public API."""
