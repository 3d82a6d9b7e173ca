"""The web page: a live view of the vault (`ai-employee dashboard`, `run --dashboard`).

app.py (routes), view.py (the board's cards), live.py (file events -> SSE), transcript.py,
render.py (markdown, safe), charts.py (SVG), auditlog.py, servicestate.py, security.py (host,
token, origin, CSRF), server.py (uvicorn, in the foreground or in a thread of the service).
"""

from .server import Running, serve, serve_in_thread

__all__ = ["Running", "serve", "serve_in_thread"]
