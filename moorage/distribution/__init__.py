"""The registry client: auth, endpoints and mirrors, pull, push (distribution-spec v1.1)."""
