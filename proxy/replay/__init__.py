"""Recordings for test suites: cassette files, and the pytest plugin."""
