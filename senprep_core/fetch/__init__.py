"""Fetching: one HTTP client (retries, resumable downloads, checksums), credentials and the shared cache."""
