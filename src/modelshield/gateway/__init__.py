"""Security gateway in front of served models (a later issue); nothing imports this package."""
