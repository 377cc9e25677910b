"""Test support: real servers on loopback (recall and fake providers) run on a background event loop."""
