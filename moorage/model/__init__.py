"""The engine's typed models, apart from the API and the daemon.

Configuration models (what clients send and the engine keeps: ContainerConfig,
HostConfig, ...) carry their wire names as field metadata so that the API's
codec can map them to Docker's PascalCase JSON; records (container, exec) are
the daemon's own state, with integer-nanosecond times and a schema version;
request and result models of images, distribution and system likewise.
Pure: the standard library and moorage.errors only.
"""
