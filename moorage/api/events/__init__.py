"""The /events route."""
