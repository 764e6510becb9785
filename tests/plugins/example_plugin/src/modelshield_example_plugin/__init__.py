"""A third-party modelshield plug-in, as an outside package would write one, installed in the test venv.

Each entry point names a class in a sub-module; modelshield calls it without arguments to get the plug-in. The
package itself imports nothing: every ``modelshield scan`` loads the scanner's entry point (and so this package),
and must not pay for NumPy or the audit machinery that the check and the attack need.
"""
