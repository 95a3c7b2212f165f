"""System-wide views of the engine: /info and /version data, later df."""
