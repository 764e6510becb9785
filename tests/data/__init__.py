"""Tests of modelshield.data (a package so that test module names may repeat across tests/ folders)."""
