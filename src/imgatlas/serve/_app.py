"""``create_app(workspace, ...)``: the web app as a library function; ``imgatlas serve``
only hands it to uvicorn. The same core as the CLI: the workspace's named methods, the
index, search, sketch and classify stages."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imgatlas._package_data import incomplete_install, package_path
from imgatlas._templates import template_env
from imgatlas.errors import (
    ConfigError,
    DecodeError,
    ImgatlasError,
    WorkspaceLocked,
    as_user_error,
)
from imgatlas.serve._security import (
    CSRF_COOKIE,
    HEADERS,
    TOKEN_COOKIE,
    csrf_token,
    token_ok,
)
from imgatlas.serve._state import AppState, Settings
from imgatlas.serve._views import plain_int


def create_app(workspace: str | os.PathLike[str], *, run: int | None = None,
               model: str | os.PathLike[str] | None = None, allow_edits: bool = False,
               token: str | None = None, max_upload: int = 20 * 2**20,
               cache_dir: str | os.PathLike[str] | None = None, warm: bool = True) -> Any:
    """The ASGI app over ``workspace``. ``token``: every request must carry it (set it
    whenever the app is reachable from other machines). ``warm`` loads the backbone, the
    index and the model now rather than on the first request."""
    from imgatlas._optional import require

    fastapi = require("fastapi", "serve", "the web app")
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from imgatlas.serve import _api, _pages

    settings = Settings(Path(workspace), run=run, model=Path(model) if model else None,
                        allow_edits=allow_edits, token=token, max_upload=max_upload,
                        cache_dir=Path(cache_dir) if cache_dir else None)
    st = AppState(settings)
    if warm:
        st.warm()
    # no /docs: FastAPI's Swagger page loads scripts from a CDN (offline, and the CSP);
    # the OpenAPI document itself is at /openapi.json
    app = fastapi.FastAPI(title="imgatlas", version=_version(), docs_url=None,
                          redoc_url=None,
                          description="Browse, search (by image or by drawing) and classify "
                                      "an imgatlas workspace.")
    app.state.imgatlas = st
    app.state.templates = template_env("imgatlas.serve")
    static = package_path("serve/static")
    if not static.is_dir():
        raise incomplete_install(["serve/static"])
    app.mount("/static", StaticFiles(directory=static), name="static")
    app.include_router(_api.router)
    app.include_router(_pages.router)

    @app.middleware("http")
    async def guard(request: Request, call_next: Any) -> Any:
        if not token_ok(settings, request):
            return JSONResponse({"detail": "a token is needed: open the URL printed by "
                                           "'imgatlas serve'"}, status_code=401,
                                headers=HEADERS)
        length = request.headers.get("content-length")
        if (plain_int(length) or 0) > settings.max_upload + 2**16:
            return JSONResponse({"detail": f"upload larger than "
                                           f"{settings.max_upload // 2**20} MB"},
                                status_code=413, headers=HEADERS)
        response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        if settings.token is not None and request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, settings.token, httponly=True, samesite="strict")
        if "text/html" in response.headers.get("content-type", ""):
            response.set_cookie(CSRF_COOKIE, csrf_token(settings), samesite="strict")
        return response

    def error(status: int, message: str) -> Any:
        return JSONResponse({"detail": message}, status_code=status, headers=HEADERS)

    @app.exception_handler(DecodeError)
    async def bad_image(request: Request, e: DecodeError) -> Any:
        from imgatlas.decode import TooLarge

        status = 413 if isinstance(e, TooLarge) else 415
        return error(status, f"not a usable image: {e}")

    @app.exception_handler(WorkspaceLocked)
    async def busy(request: Request, e: WorkspaceLocked) -> Any:
        return error(409, "the workspace is busy with another writer; try again")

    @app.exception_handler(ConfigError)
    async def bad_request(request: Request, e: ConfigError) -> Any:
        return error(400, str(e))

    @app.exception_handler(ImgatlasError)
    async def failed(request: Request, e: ImgatlasError) -> Any:
        return error(500 if not isinstance(e, DecodeError) else 415, str(e))

    @app.exception_handler(ValueError)
    async def library_refused(request: Request, e: ValueError) -> Any:
        user = as_user_error(e)
        if user is None:
            raise e
        return error(400, str(user))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Any:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        return error(422, f"invalid request: {where}: {first.get('msg', 'bad value')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException) -> Any:
        if "text/html" in request.headers.get("accept", "") and e.status_code in (403, 404):
            html = app.state.templates.get_template("error.html.j2").render(
                version=_version(), title=str(e.status_code), status=e.status_code,
                message=str(e.detail))
            from fastapi.responses import HTMLResponse

            return HTMLResponse(html, status_code=e.status_code, headers=HEADERS)
        return error(e.status_code, str(e.detail))

    return app


def _version() -> str:
    from imgatlas._version import __version__

    return __version__
