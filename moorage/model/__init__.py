"""The daemon's typed records and request/result models, shared by api/ and daemon/.

Neutral: only the standard library and moorage.errors.
"""
