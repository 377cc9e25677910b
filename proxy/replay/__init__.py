"""Recordings for test suites: cassette files (the pytest plugin that writes them is proxy/cli/pytest_plugin.py)."""
