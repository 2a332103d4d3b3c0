"""The hub service: an HTTP API and a web page over gmi.hub.Hub (FastAPI on uvicorn)."""
