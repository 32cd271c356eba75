"""Sign-in, sessions and CSRF for the review app (stdlib hashing + itsdangerous signing).

Passwords are stored only as PBKDF2-SHA256 hashes in config; a session is a signed,
timestamped cookie (so it expires without server state); the CSRF token is an HMAC of
the session's random id, sent in every form and checked on every state change.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

PBKDF2_ITERATIONS = 260_000  # OWASP-era default for PBKDF2-SHA256; ~0.1 s per sign-in
SESSION_COOKIE = "callqa_session"


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: bytes | None = None) -> str:
    """``pbkdf2_sha256$iterations$salt$hash`` for ``[review.users]`` in config."""
    if not password:
        raise ValueError("password must not be empty")
    salt = salt or secrets.token_bytes(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "pbkdf2_sha256${}${}${}".format(iterations, _b64(salt), _b64(dk))


def verify_password(password: str, encoded: str) -> bool:
    try:
        algo, iters, salt, digest = encoded.split("$")
        if algo != "pbkdf2_sha256":
            return False
        dk = hashlib.pbkdf2_hmac("sha256", password.encode(), _unb64(salt), int(iters))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(dk, _unb64(digest))


def verify_token(token: str, token_sha256: str) -> bool:
    if not token_sha256 or not token:
        return False
    return hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest(), token_sha256.lower())


@dataclass(frozen=True)
class Session:
    user: str
    sid: str  # random per sign-in; the CSRF token is derived from it


class SessionManager:
    """Signed, expiring session cookies and the CSRF tokens bound to them."""

    def __init__(self, *, secret_key: str, lifetime_s: float) -> None:
        self._key = secret_key or secrets.token_urlsafe(32)
        self.lifetime_s = lifetime_s
        self._serializer = URLSafeTimedSerializer(self._key, salt="callqa-session")

    def issue(self, user: str) -> tuple[str, Session]:
        session = Session(user=user, sid=secrets.token_urlsafe(16))
        return self._serializer.dumps({"u": user, "s": session.sid}), session

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.lifetime_s)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str) or not isinstance(data.get("s"), str):
            return None
        return Session(user=data["u"], sid=data["s"])

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self._key.encode(), f"csrf:{session.sid}".encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: Session, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(session), token)


def _b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).decode().rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
