"""System routes: /_ping, /version, /info (Engine API "System" section)."""
