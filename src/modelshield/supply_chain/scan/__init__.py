"""Model-file scanning: static analysis of what loading a model file would execute (in progress)."""
