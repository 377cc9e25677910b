"""recall: a local-first conversation-state proxy and offline cache for LLM APIs."""

__version__ = "0.1.0"
