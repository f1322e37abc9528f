"""Concierge backend: settings, database, seed data and services used by the action server."""
