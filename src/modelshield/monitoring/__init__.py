"""Production monitoring: drift, client behaviour, alerts (a later issue)."""
