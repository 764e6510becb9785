"""Evasion: adversarial examples against a trained model (white-box and black-box), and robustness evaluation."""
