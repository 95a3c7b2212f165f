"""/networks: list, inspect, create, remove, prune, connect, disconnect."""
