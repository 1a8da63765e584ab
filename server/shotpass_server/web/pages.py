"""The HTML pages: small shells (one template) that the page script fills from the JSON API. Each page
checks access before it is served, so another project's page is refused outright, not shown empty."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path
from typing import Any, Dict, Optional
from urllib.parse import parse_qs, quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..accounts import Unauthenticated
from ..errors import InvalidInput
from .api import MAX_BODY, ReviewApi
from .auth import CSRF_FIELD, WebAccess

TEMPLATES = Path(__file__).parent / "templates"
log = logging.getLogger("shotpass.web")


class Pages:
    def __init__(self, api: ReviewApi, access: WebAccess) -> None:
        self.api = api
        self.access = access
        self._page = (TEMPLATES / "page.html").read_text()
        self._login = (TEMPLATES / "login.html").read_text()

    def home(self, request: Request) -> Response:
        return RedirectResponse("/queue", status_code=303)

    def queue(self, request: Request) -> Response:
        return self._shell(request, "queue", "Queue", {})

    def shots(self, request: Request) -> Response:
        return self._shell(request, "shots", "Shots", {})

    def stats(self, request: Request) -> Response:
        return self._shell(request, "stats", "Device time", {})

    def shot(self, request: Request) -> Response:
        project, shot = request.path_params["project"], request.path_params["shot"]
        caller = self.access.caller(request)
        self.api.check_project(caller, project)
        return self._shell(request, "shot", f"{project} / {shot}", {"project": project, "shot": shot})

    def render(self, request: Request) -> Response:
        render_id = request.path_params["render_id"]
        r = self.api.check_render(self.access.caller(request), render_id)
        compare = request.query_params.get("compare", "")
        return self._shell(request, "render", f"{r.project} / {r.shot} v{r.version:03d}",
                           {"render_id": r.id, "compare": compare})

    def _shell(self, request: Request, page: str, title: str, args: Dict[str, Any]) -> Response:
        caller = self.access.caller(request)  # Unauthenticated: the error handler sends the browser to /login
        csrf, nonce = self.access.csrf_token(request)
        who = "single-user server" if self.access.single_user else caller.name + (" (admin)" if caller.admin else "")
        text = _fill(self._page, title=title, page=page, args=json.dumps(args), csrf=csrf, user=who,
                     logout="" if self.access.single_user else "shown")
        response = HTMLResponse(text)
        self.access.set_nonce(response, nonce)
        return response

    # ------------------------------------------------------------ login

    def login_form(self, request: Request, error: str = "", status: int = 200) -> Response:
        if self.access.single_user:
            return RedirectResponse("/queue", status_code=303)
        csrf, nonce = self.access.csrf_token(request)
        text = _fill(self._login, csrf=csrf, error=error, next=_local_path(request.query_params.get("next")))
        response = HTMLResponse(text, status_code=status)
        self.access.set_nonce(response, nonce)
        return response

    async def login(self, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise InvalidInput("login form too large")
        form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        return await run_in_threadpool(self._login_checked, request, form)

    def _login_checked(self, request: Request, form: Dict[str, str]) -> Response:
        self.access.check_csrf(request, form)
        if self.access.single_user:
            return RedirectResponse("/queue", status_code=303)
        token = form.get("token", "").strip()
        try:
            caller = self.access.check_login(token)
        except Unauthenticated as err:
            log.warning("review pages: a login from %s was refused", request.client.host if request.client else "?")
            return self.login_form(request, str(err) if token else "paste your token", status=401)
        log.info("review pages: %s logged in from %s", caller.name, request.client.host if request.client else "?")
        response = RedirectResponse(_local_path(form.get("next")), status_code=303)
        self.access.set_session(response, token)
        return response

    async def logout(self, request: Request) -> Response:
        raw = await request.body()
        form = {k: v[0] for k, v in parse_qs(raw[:MAX_BODY].decode("utf-8", "replace")).items()}
        self.access.check_csrf(request, form)
        response = RedirectResponse("/login", status_code=303)
        self.access.clear_session(response)
        return response


def login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)


def error_page(status: int, message: str) -> Response:
    text = (f"<!doctype html><meta charset=utf-8><title>shotpass: {status}</title>"
            f"<link rel=stylesheet href=/static/style.css><main class=error-page><h1>{status}</h1>"
            f"<p id=error>{html.escape(message)}</p><p><a href=/queue>queue</a> · <a href=/shots>shots</a></p></main>")
    return HTMLResponse(text, status_code=status)


def _local_path(target: Optional[str]) -> str:
    """Only a path on this server: never an open redirect to another site."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/queue"
    return target


def _fill(template: str, **values: str) -> str:
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", html.escape(value, quote=True))
    return template


__all__ = ["CSRF_FIELD", "Pages", "error_page", "login_redirect"]
