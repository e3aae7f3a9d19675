"""Thin Panel views over :mod:`app.state`."""
