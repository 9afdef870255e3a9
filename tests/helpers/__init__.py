"""Shared test helpers (imported as `helpers.X`: tests/ is on sys.path under pytest)."""
