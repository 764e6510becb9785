"""The package version, in a module of its own so that no layer imports the package façade for it."""

__version__ = "0.1.0"
