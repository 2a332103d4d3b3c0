"""The web pages (offline: plain HTML, CSS and JavaScript shipped in the package)."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from gmi.errors import NotFoundError

STATIC = resources.files("gmi.server").joinpath("static")
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32">'
    '<rect width="32" height="32" rx="6" fill="#2b59c3"/>'
    '<circle cx="13" cy="13" r="7" fill="none" stroke="#fff" stroke-width="3"/>'
    '<path d="M18 18l8 8" stroke="#fff" stroke-width="3" stroke-linecap="round"/></svg>'
)

router = APIRouter()


def page(filename: str) -> HTMLResponse:
    return HTMLResponse(STATIC.joinpath(filename).read_text(encoding="utf-8"))


@router.get("/", include_in_schema=False)
def index_page() -> HTMLResponse:
    return page("index.html")


@router.get("/gallery", include_in_schema=False)
def gallery_page() -> HTMLResponse:
    return page("gallery.html")


@router.get("/admin", include_in_schema=False)
def admin_page() -> HTMLResponse:
    return page("admin.html")


@router.get("/favicon.ico", include_in_schema=False)
@router.get("/favicon.svg", include_in_schema=False)
def favicon() -> Response:
    return Response(FAVICON, media_type="image/svg+xml")


@router.get("/static/{filename}", include_in_schema=False)
def static_file(filename: str) -> Response:
    allowed = {"app.css": "text/css", "app.js": "text/javascript"}
    if filename not in allowed:  # a fixed list: no client path reaches the filesystem
        raise NotFoundError("no such file")
    return Response(
        STATIC.joinpath(filename).read_text(encoding="utf-8"), media_type=allowed[filename]
    )
