"""Who is asking, over HTTP: the gRPC tokens (from a login cookie or an `Authorization: Bearer` header),
checked by the same Accounts, and CSRF tokens for every POST.

The session cookie holds the user's own token (HttpOnly, SameSite=Strict), so revoking a token ends its
browser sessions at once: every request asks Accounts again. A CSRF token is an HMAC, under a secret of this
server process, of the session token or, before login and on a single-user server, of a random nonce kept in
a cookie of its own; a cross-site page can neither read it nor compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any, Dict, Optional, Tuple

from starlette.requests import Request
from starlette.responses import Response

from ..accounts import LOCAL, Accounts, Caller, PermissionDenied, bearer

SESSION_COOKIE = "shotpass_session"
NONCE_COOKIE = "shotpass_nonce"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SESSION_MAX_AGE_S = 12 * 3600


class CsrfFailed(PermissionDenied):
    """A POST without the page's CSRF token (HTTP 403)."""


class WebAccess:
    def __init__(self, accounts: Optional[Accounts], secure_cookies: bool) -> None:
        self.accounts = accounts
        self.secure_cookies = secure_cookies
        self._secret = secrets.token_bytes(32)  # per process: a restart asks open pages to reload

    @property
    def single_user(self) -> bool:
        return self.accounts is None or not self.accounts.has_users()

    def token(self, request: Request) -> Optional[str]:
        """The bearer token of the Authorization header, else the session cookie's."""
        header = request.headers.get("authorization")
        if header is not None:
            return bearer([("authorization", header)]) or ""
        return request.cookies.get(SESSION_COOKIE) or None

    def caller(self, request: Request) -> Caller:
        """The caller as the gRPC service sees them (Unauthenticated without a valid token on a shared server)."""
        if self.accounts is None:
            return LOCAL
        token = self.token(request)
        return self.accounts.caller([("authorization", f"Bearer {token}")] if token else [])

    def check_login(self, token: str) -> Caller:
        """A token typed into the login form: valid here, or Unauthenticated."""
        assert self.accounts is not None
        return self.accounts.caller([("authorization", f"Bearer {token.strip()}")])

    # ------------------------------------------------------------ CSRF

    def csrf_token(self, request: Request) -> Tuple[str, Optional[str]]:
        """(the CSRF token for this browser, a new nonce to set as a cookie or None)."""
        token = self.token(request)
        if token:
            return self._sign("session", token), None
        nonce = request.cookies.get(NONCE_COOKIE)
        fresh = None
        if not nonce or len(nonce) > 100:
            nonce = fresh = secrets.token_urlsafe(24)
        return self._sign("nonce", nonce), fresh

    def check_csrf(self, request: Request, form: Optional[Dict[str, str]] = None) -> None:
        sent = request.headers.get(CSRF_HEADER) or (form or {}).get(CSRF_FIELD, "")
        token = self.token(request)
        nonce = request.cookies.get(NONCE_COOKIE)
        expected = self._sign("session", token) if token else self._sign("nonce", nonce) if nonce else ""
        if not sent or not expected or not hmac.compare_digest(sent, expected):
            raise CsrfFailed("this action needs the page's CSRF token (X-CSRF-Token header, from GET /api/session); "
                             "reload the page and try again")

    def _sign(self, kind: str, value: str) -> str:
        digest = hashlib.sha256(value.encode()).hexdigest()
        return hmac.new(self._secret, f"{kind}:{digest}".encode(), hashlib.sha256).hexdigest()

    # ------------------------------------------------------------ cookies

    def set_nonce(self, response: Response, nonce: Optional[str]) -> None:
        if nonce:
            self._cookie(response, NONCE_COOKIE, nonce, max_age=SESSION_MAX_AGE_S)

    def set_session(self, response: Response, token: str) -> None:
        self._cookie(response, SESSION_COOKIE, token, max_age=SESSION_MAX_AGE_S)

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", secure=self.secure_cookies, httponly=True, samesite="strict")

    def _cookie(self, response: Response, name: str, value: str, **kwargs: Any) -> None:
        response.set_cookie(name, value, path="/", secure=self.secure_cookies, httponly=True, samesite="strict",
                            **kwargs)
