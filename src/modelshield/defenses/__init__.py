"""Defenses: training-time (adversarial training, distillation, DP-SGD), data-time and inference-time hardening.

Nothing ships here yet; see docs/architecture.md for what this layer will hold.
"""
