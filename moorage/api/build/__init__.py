"""The build routes."""
