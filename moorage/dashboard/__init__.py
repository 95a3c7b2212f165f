"""`moor dashboard`: a web interface for the engine of the current context.

A client of the Engine API only (through moorage.client), served by aiohttp with
templates rendered on the server and front-end libraries vendored in static/vendor.
"""
