"""Users, tokens and project membership: who may see which projects, renders and blobs.

Stored in the catalog's sqlite file (own tables, own connection) so one data dir holds everything and the
`shotpass users ...` commands can change it while a server runs: every RPC reads the current state, so a
revoked token stops working at once.

Zero-config default: while the users table is empty the server is single-user and every caller is
trusted (the localhost workflow needs no token). As soon as one user exists (even a revoked one, so that
revoking the last user never silently opens the server), every RPC needs a valid token.

Tokens are random 32-byte urlsafe strings, shown once; only their sha256 is stored, so a copy of the data
dir does not hand out working tokens.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, List, Optional, Tuple

from .errors import InvalidInput, NotFound, ShotpassError

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
  id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, admin INTEGER NOT NULL DEFAULT 0,
  token_hash TEXT UNIQUE, revoked INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS members (
  project TEXT NOT NULL, user_id INTEGER NOT NULL REFERENCES users(id), role TEXT NOT NULL DEFAULT 'member',
  added_at REAL NOT NULL, PRIMARY KEY (project, user_id));
CREATE TABLE IF NOT EXISTS blob_uploads (
  digest TEXT NOT NULL, user_id INTEGER NOT NULL REFERENCES users(id), uploaded_at REAL NOT NULL,
  PRIMARY KEY (digest, user_id));
CREATE INDEX IF NOT EXISTS members_by_user ON members(user_id);
"""
# Added after the first release; older data dirs get it on open. The highest render priority a user may ask
# for (admins are not capped); 0 by default, so raising one's own work above others' is the admin's call.
MIGRATIONS = (("users", "max_priority", "INTEGER NOT NULL DEFAULT 0"),)

# A project's roles: its first user is its owner; members render and review; viewers only look.
ROLES = ("owner", "member", "viewer")

TOKEN_HELP = "pass --token TOKEN or set SHOTPASS_TOKEN (the server's admin creates one with: shotpass users add NAME)"
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")


class Unauthenticated(ShotpassError):
    """No token, or one the server does not know (gRPC UNAUTHENTICATED)."""


class PermissionDenied(ShotpassError):
    """A known user asked for a project, render or blob outside their projects (gRPC PERMISSION_DENIED)."""


@dataclass(frozen=True)
class Caller:
    """Who is calling. user_id None: the single-user default, where everything is allowed."""

    name: str
    admin: bool
    user_id: Optional[int] = None
    max_priority: Optional[int] = None  # None: not capped (admins, the single-user default)

    @property
    def sees_all(self) -> bool:
        return self.admin or self.user_id is None


LOCAL = Caller(name="", admin=True)


@dataclass
class UserRow:
    name: str
    admin: bool
    revoked: bool
    created_at: float
    projects: List[str]
    max_priority: int = 0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return "sp_" + secrets.token_urlsafe(32)


def bearer(metadata: Optional[Iterable[Tuple[str, Any]]]) -> Optional[str]:
    """The token of an `authorization: Bearer TOKEN` metadata entry, if any."""
    for key, value in metadata or ():
        if key.lower() == "authorization":
            text = value.decode() if isinstance(value, bytes) else str(value)
            scheme, _, token = text.strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    return None


class Accounts:
    def __init__(self, path: Path) -> None:
        # timeout: the catalog's connection writes to the same file; wait for its short transactions.
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=30.0)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            for table, column, declaration in MIGRATIONS:
                if column not in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ------------------------------------------------------------------ users (the `shotpass users` commands)

    def add_user(self, name: str, admin: bool = False, max_priority: int = 0) -> str:
        """Create a user; returns their token (the only time it is seen)."""
        _check_name("user", name)
        token = new_token()
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO users (name, admin, token_hash, created_at, max_priority) VALUES (?, ?, ?, ?, ?)",
                    (name, int(admin), hash_token(token), time.time(), int(max_priority)),
                )
            except sqlite3.IntegrityError:
                raise InvalidInput(f"user {name!r} exists already (new token: shotpass users token {name})") from None
        return token

    def new_token(self, name: str) -> str:
        """Replace a user's token (the old one stops working) and lift a revocation."""
        token = new_token()
        with self._lock:
            cur = self._db.execute(
                "UPDATE users SET token_hash = ?, revoked = 0 WHERE name = ?", (hash_token(token), name)
            )
        if cur.rowcount == 0:
            raise NotFound(f"no user {name!r} (list them with: shotpass users list)")
        return token

    def set_max_priority(self, name: str, max_priority: int) -> None:
        with self._lock:
            cur = self._db.execute("UPDATE users SET max_priority = ? WHERE name = ?", (int(max_priority), name))
        if cur.rowcount == 0:
            raise NotFound(f"no user {name!r} (list them with: shotpass users list)")

    def revoke(self, name: str) -> None:
        with self._lock:
            cur = self._db.execute("UPDATE users SET token_hash = NULL, revoked = 1 WHERE name = ?", (name,))
        if cur.rowcount == 0:
            raise NotFound(f"no user {name!r} (list them with: shotpass users list)")

    def users(self) -> List[UserRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, name, admin, revoked, created_at, max_priority FROM users ORDER BY name"
            ).fetchall()
            return [
                UserRow(r["name"], bool(r["admin"]), bool(r["revoked"]), r["created_at"], self._projects_of(r["id"]),
                        int(r["max_priority"]))
                for r in rows
            ]

    def has_users(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT EXISTS (SELECT 1 FROM users)").fetchone()[0] == 1

    # ------------------------------------------------------------------ membership (`shotpass projects`)

    def add_member(self, project: str, user: str, role: Optional[str] = None) -> None:
        """Add a user to a project (as a member unless `role` says otherwise); a given role replaces theirs."""
        if not project or len(project) > 200 or any(c in project for c in "\x00\n\r/\\"):
            raise InvalidInput(f"project name {project!r}: 1-200 characters, no slashes or line breaks")
        if role is not None and role not in ROLES:
            raise InvalidInput(f"role {role!r}: use one of {', '.join(ROLES)}")
        # Without a role an existing membership (an owner's, say) is left as it is.
        keep = "DO NOTHING" if role is None else "DO UPDATE SET role = excluded.role"
        with self._lock:
            user_id = self._user_id(user)
            self._db.execute(
                f"INSERT INTO members (project, user_id, role, added_at) VALUES (?, ?, ?, ?)"
                f" ON CONFLICT (project, user_id) {keep}",
                (project, user_id, role or "member", time.time()),
            )

    def remove_member(self, project: str, user: str) -> None:
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM members WHERE project = ? AND user_id = ?", (project, self._user_id(user))
            )
        if cur.rowcount == 0:
            raise NotFound(f"{user} is not a member of project {project!r}")

    def projects(self) -> List[Tuple[str, List[str]]]:
        """Every project (with renders or members) and its members, owners first."""
        with self._lock:
            names = {r[0] for r in self._db.execute("SELECT project FROM members")}
            if self._has_table("projects"):
                names |= {r[0] for r in self._db.execute("SELECT name FROM projects")}
            out = []
            for name in sorted(names):
                rows = self._db.execute(
                    "SELECT u.name, m.role FROM members m JOIN users u ON u.id = m.user_id WHERE m.project = ?"
                    " ORDER BY m.role != 'owner', m.added_at",
                    (name,),
                ).fetchall()
                out.append((name, [f"{r[0]} ({r[1]})" if r[1] != "member" else r[0] for r in rows]))
        return out

    # ------------------------------------------------------------------ checks (the servicer's)

    def caller(self, metadata: Optional[Iterable[Tuple[str, Any]]]) -> Caller:
        if not self.has_users():
            return LOCAL
        token = bearer(metadata)
        if token is None:
            raise Unauthenticated(f"this server needs a token: {TOKEN_HELP}")
        with self._lock:
            row = self._db.execute(
                "SELECT id, name, admin, max_priority FROM users WHERE token_hash = ? AND revoked = 0",
                (hash_token(token),),
            ).fetchone()
        if row is None:
            raise Unauthenticated("this token is not valid on this server (wrong or revoked); ask its admin for one")
        admin = bool(row["admin"])
        return Caller(name=row["name"], admin=admin, user_id=row["id"],
                      max_priority=None if admin else int(row["max_priority"]))

    def visible_projects(self, caller: Caller) -> Optional[List[str]]:
        """The projects a caller may see; None means all of them."""
        if caller.sees_all:
            return None
        with self._lock:
            return self._projects_of(caller.user_id)

    def check_project(self, caller: Caller, project: str) -> None:
        if caller.sees_all:
            return
        with self._lock:
            if not self._is_member(project, caller.user_id):
                raise PermissionDenied(f"{caller.name} is not a member of project {project!r}")

    def claim_project(self, caller: Caller, project: str, configured: bool = False) -> bool:
        """Before a render is created in `project`: its first user becomes its owner, anyone else must be a member.

        Returns True when this call made the caller the owner (so a failed submission can `release` it).
        One IMMEDIATE transaction, so two users creating the same new project cannot both become owners.
        A `configured` project (one with its own plate roots in the server's config) is never claimed by a
        first render: its members are whoever the admin adds, or its storage would go to whoever came first.
        """
        if caller.user_id is None:
            return False
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                claimed = False
                if self._role(project, caller.user_id) == "viewer" and not caller.admin:
                    raise PermissionDenied(f"{caller.name} may only view project {project!r}, not render in it")
                if not self._is_member(project, caller.user_id):
                    exists = self._db.execute("SELECT 1 FROM members WHERE project = ? LIMIT 1", (project,)).fetchone()
                    if not exists and self._has_table("projects"):
                        exists = self._db.execute("SELECT 1 FROM projects WHERE name = ?", (project,)).fetchone()
                    if configured and not caller.admin:
                        raise PermissionDenied(
                            f"{caller.name} is not a member of project {project!r}, which has its own plate storage "
                            f"on this server; the server's admin adds its members: shotpass projects add-member "
                            f"{project} {caller.name}"
                        )
                    if exists and not caller.admin:
                        raise PermissionDenied(
                            f"{caller.name} is not a member of project {project!r} "
                            f"(its owner or the server's admin can add you: shotpass projects add-member "
                            f"{project} {caller.name})"
                        )
                    if not exists:
                        self._db.execute(
                            "INSERT INTO members (project, user_id, role, added_at) VALUES (?, ?, 'owner', ?)",
                            (project, caller.user_id, time.time()),
                        )
                        claimed = True
                self._db.execute("COMMIT")
                return claimed
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def release(self, caller: Caller, project: str) -> None:
        """Undo a claim whose submission failed, unless a render of the project got created meanwhile."""
        with self._lock:
            if self._has_table("projects") and self._db.execute(
                "SELECT 1 FROM projects WHERE name = ?", (project,)
            ).fetchone():
                return
            self._db.execute("DELETE FROM members WHERE project = ? AND user_id = ?", (project, caller.user_id))

    def check_render(self, caller: Caller, render_id: str, write: bool = False) -> None:
        """NOT_FOUND, in the catalog's very words, for another project's render as for a missing one: whether a
        render id exists, and which project holds it, is not told to those outside that project. With `write`
        (cancel, review), PERMISSION_DENIED for the project's viewers."""
        if caller.sees_all:
            return
        with self._lock:
            row = self._db.execute(
                "SELECT p.name FROM renders r JOIN shots s ON s.id = r.shot_id JOIN projects p ON p.id = s.project_id"
                " WHERE r.id = ?",
                (render_id,),
            ).fetchone()
            member = self._is_member(row[0] if row else "", caller.user_id)  # asked either way: same work
            if row is None or not member:
                raise NotFound(f"no render {render_id!r} on this server (list them with: shotpass renders)")
            role = self._role(row[0], caller.user_id)
            if write and role == "viewer":
                raise PermissionDenied(f"{caller.name} may only view project {row[0]!r}: cancel and review are "
                                       "for its members")

    def may_reach(self, caller: Caller, digest: str) -> bool:
        """A blob is reachable if the caller uploaded it or a render of one of their projects uses or made it."""
        if caller.sees_all:
            return True
        with self._lock:
            if self._db.execute(
                "SELECT 1 FROM blob_uploads WHERE digest = ? AND user_id = ?", (digest, caller.user_id)
            ).fetchone():
                return True
            mine = (
                "JOIN shots s ON s.id = r.shot_id JOIN projects p ON p.id = s.project_id"
                " JOIN members m ON m.project = p.name AND m.user_id = ?"
            )
            # Three single-column lookups, each served by its own index, rather than one OR-ed scan.
            for column in ("input_digest", "output_digest", "mask_digest"):
                if self._db.execute(
                    f"SELECT 1 FROM frames f JOIN renders r ON r.id = f.render_id {mine} WHERE f.{column} = ? LIMIT 1",
                    (caller.user_id, digest),
                ).fetchone():
                    return True
            return (
                self._db.execute(
                    f"SELECT 1 FROM renders r {mine} WHERE r.reference_digest = ? LIMIT 1", (caller.user_id, digest)
                ).fetchone()
                is not None
            )

    def check_blob(self, caller: Caller, digest: str, what: str = "blob") -> None:
        # The same answer whether or not the blob is stored: existence of another user's plate is not leaked.
        if not self.may_reach(caller, digest):
            raise PermissionDenied(f"{what} {digest[:12]} is not in any project of {caller.name}")

    def record_upload(self, caller: Caller, digest: str) -> None:
        """The caller sent the bytes (verified against the digest), so they may use that blob from now on."""
        if caller.user_id is None:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO blob_uploads (digest, user_id, uploaded_at) VALUES (?, ?, ?)",
                (digest, caller.user_id, time.time()),
            )

    # ------------------------------------------------------------------ helpers

    def _user_id(self, name: str) -> int:
        row = self._db.execute("SELECT id FROM users WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFound(f"no user {name!r} (list them with: shotpass users list)")
        return int(row[0])

    def role(self, caller: Caller, project: str) -> Optional[str]:
        """The caller's role in a project ("admin" for those who see everything), None if not a member."""
        if caller.sees_all:
            return "admin"
        with self._lock:
            return self._role(project, caller.user_id)

    def _role(self, project: str, user_id: Optional[int]) -> Optional[str]:
        row = self._db.execute(
            "SELECT role FROM members WHERE project = ? AND user_id = ?", (project, user_id)
        ).fetchone()
        return None if row is None else str(row[0])

    def _is_member(self, project: str, user_id: Optional[int]) -> bool:
        return (
            self._db.execute("SELECT 1 FROM members WHERE project = ? AND user_id = ?", (project, user_id)).fetchone()
            is not None
        )

    def _projects_of(self, user_id: Optional[int]) -> List[str]:
        rows = self._db.execute("SELECT project FROM members WHERE user_id = ? ORDER BY project", (user_id,))
        return [r[0] for r in rows]

    def _has_table(self, name: str) -> bool:
        # The catalog creates its tables; a `shotpass users` command may run before any server did.
        return (
            self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
            is not None
        )


def _check_name(kind: str, value: str) -> None:
    if not value or len(value) > 200 or not set(value) <= _NAME_CHARS:
        raise InvalidInput(f"{kind} name {value!r}: use 1-200 letters, digits, '.', '_', '-' or '@'")
