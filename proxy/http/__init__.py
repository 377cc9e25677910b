"""The edge: the aiohttp app, the route table, the request log, and HTTP quirks recall must accept."""
