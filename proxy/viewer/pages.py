"""The page and its assets, shipped inside the package (no CDN, no external fonts).

They hold no stored data: the page fetches everything from /_recall/api/.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from .access import ViewerError

# The files under static/ that may be served, with their types.
ASSETS = {
    "index.html": "text/html",
    "viewer.js": "text/javascript",
    "viewer.css": "text/css",
}


def load_assets() -> dict[str, bytes]:
    """Every asset's bytes, read once from the installed package."""
    folder = resources.files(__package__).joinpath("static")
    return {name: folder.joinpath(name).read_bytes() for name in ASSETS}


class Pages:
    def __init__(self) -> None:
        self.assets = load_assets()

    def _file(self, name: str) -> web.Response:
        return web.Response(body=self.assets[name], content_type=ASSETS[name], charset="utf-8",
                            headers={"Cache-Control": "no-cache"})

    async def index(self, request: web.Request) -> web.Response:
        return self._file("index.html")

    async def asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS or name == "index.html":
            raise ViewerError(404, "not_found", f"the viewer has no file {name!r}")
        return self._file(name)
