"""Options of the review web app (the ``[review]`` section of ``config/default.toml``).

Kept free of web imports so ``pipeline.config`` can compose it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path


@dataclass(frozen=True)
class ReviewOptions:
    # name -> password hash from `callqa hash-password` (pbkdf2_sha256$iterations$salt$hash)
    users: dict[str, str] = field(default_factory=dict)
    # sha256 hex digest of a shared sign-in token; empty disables token sign-in
    token_sha256: str = ""
    session_lifetime_min: float = 480.0  # minutes a sign-in lasts (one shift)
    secret_key: str = ""  # signs session cookies; empty = random per start (sign-ins end on restart)
    cookie_secure: bool = False  # set true when served behind HTTPS
    recording_roots: tuple[str, ...] = ()  # folders audio may be served from; nothing else is
    page_size: int = 50  # flags per list page
    silence_min_s: float = 2.0  # gaps shorter than this are not drawn as silence on the timeline
    login_max_failures: int = 10  # failed sign-ins per client address within login_window_min before a lockout
    login_window_min: float = 5.0  # minutes the failures are counted over (and the lockout lasts)

    def __post_init__(self) -> None:
        if self.session_lifetime_min <= 0:
            raise ValueError("config: review.session_lifetime_min must be > 0 (minutes)")
        if not 1 <= self.page_size <= 1000:
            raise ValueError("config: review.page_size must be between 1 and 1000")
        if self.login_max_failures < 1 or self.login_window_min <= 0:
            raise ValueError("config: review.login_max_failures must be >= 1 and review.login_window_min > 0")
        if self.silence_min_s < 0:
            raise ValueError("config: review.silence_min_s must be >= 0 (seconds)")
        if "token" in self.users:
            raise ValueError("config: review.users.token: the name 'token' is reserved for token sign-ins")
        for name, h in self.users.items():
            if not name or not isinstance(h, str) or not h.startswith("pbkdf2_sha256$"):
                raise ValueError(
                    f"config: review.users.{name} must be a hash made by `callqa hash-password` "
                    "(starts with pbkdf2_sha256$), never a plain password")
        if self.token_sha256 and (len(self.token_sha256) != 64
                                  or any(c not in "0123456789abcdef" for c in self.token_sha256.lower())):
            raise ValueError("config: review.token_sha256 must be the 64-hex-digit sha256 of the token")

    @property
    def roots(self) -> tuple[Path, ...]:
        """Recording roots, resolved (symlinks followed) once."""
        return tuple(Path(r).expanduser().resolve() for r in self.recording_roots)




def load_review_options(path: str | Path | None = None, *, overrides: dict | None = None) -> ReviewOptions:
    """``[review]`` from config/default.toml, then from ``path``, then ``overrides``.

    Read on its own (not through ``load_config``) so the app needs nothing else of the config.
    """
    from ..config import DEFAULT_CONFIG_PATH, read_toml  # late: config imports this module

    data: dict = {}
    if DEFAULT_CONFIG_PATH.is_file():
        data = dict(read_toml(DEFAULT_CONFIG_PATH).get("review") or {})
    if path is not None:
        data = _merge(data, read_toml(Path(path)).get("review") or {})
    if overrides:
        data = _merge(data, overrides)
    return options_from_dict(data)


def options_from_dict(data: dict) -> ReviewOptions:
    """Build options from a ``[review]`` table, naming the key on a wrong type or unknown key."""
    known = {f.name: f for f in fields(ReviewOptions)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"config: [review] unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    kw: dict = {}
    for k, v in data.items():
        default = getattr(ReviewOptions(), k)
        where = f"review.{k}"
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise ValueError(f"config: {where} must be true or false, got {v!r}")
        elif isinstance(default, int):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ValueError(f"config: {where} must be a whole number, got {v!r}")
        elif isinstance(default, float):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"config: {where} must be a number, got {v!r}")
            v = float(v)
        elif isinstance(default, str):
            if not isinstance(v, str):
                raise ValueError(f"config: {where} must be a string, got {v!r}")
        elif isinstance(default, tuple):
            if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"config: {where} must be a list of strings, got {v!r}")
            v = tuple(v)
        elif isinstance(default, dict):
            if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                raise ValueError(f"config: {where} must be a table of name = \"hash\", got {v!r}")
            v = dict(v)
        kw[k] = v
    return ReviewOptions(**kw)



def _merge(base: dict, top: dict) -> dict:
    out = dict(base)
    for k, v in top.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) and k != "users" else v
    return out
