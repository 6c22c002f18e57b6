"""Helpers for the dockgate integration tests (harness only, no tests here)."""
