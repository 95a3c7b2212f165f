"""Routes of POST /commit and GET /containers/{id}/changes."""
