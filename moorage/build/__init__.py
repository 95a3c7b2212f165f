"""The Dockerfile language, pure: parsing and variable substitution, no engine imports."""
