"""Persistent state under the data-root: blobs, metadata and snapshots."""
