"""Argument and image checks shared by the library (internal)."""
