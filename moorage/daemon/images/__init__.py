"""The image service and its parts: store, registries, transfer, filters, check."""
