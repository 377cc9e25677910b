"""A read-only conversation viewer in the browser, at /_recall/ (docs/VIEWER.md).

app.py mounts it; access.py says who may use it; api.py answers the JSON
endpoints from the store's readers (proxy/store/readers.py); records.py shapes the JSON; pages.py
serves the page from static/.
"""

from .app import create_viewer_app, mount_viewer

__all__ = ["create_viewer_app", "mount_viewer"]
