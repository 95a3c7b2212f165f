"""The Docker Engine API: routes and thin handlers over backend Protocols."""
