"""Model registry: content-addressed model versions with signature, scan and audit attached (not built yet)."""
