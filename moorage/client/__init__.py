"""Engine API client: unix, tcp+TLS and ssh transports, stdlib only (fast to import)."""
