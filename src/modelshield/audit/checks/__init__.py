"""Built-in audit checks, one per module; :func:`modelshield.audit.registry.default_registry` lists them."""
