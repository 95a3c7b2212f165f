"""Volumes: the local driver's directories and who uses them."""
