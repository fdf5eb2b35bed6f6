"""Plumbing shared by the package: files, caches, locks, seeds."""
