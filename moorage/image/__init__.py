"""Pure image model: references, manifests and configs; layer application."""
