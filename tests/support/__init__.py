"""Test support: a real daemon, a real HTTP client, really pip-installed plugins."""
