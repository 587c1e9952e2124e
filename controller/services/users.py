"""Dashboard users: create, list, change password, check a login.

Passwords are stored as werkzeug hashes (scrypt by default); the clear text is
never stored or logged.  Views and the ``dialer user`` commands call these.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re

import sqlalchemy as sa
from werkzeug.security import check_password_hash, generate_password_hash

from ..db import Database
from ..errors import Conflict, InvalidInput, NotFound
from ..models import User

logger = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256
ROLES = ("admin", "supervisor")
#: werkzeug hash method; scrypt (werkzeug's default) is deliberately slow to guess
PASSWORD_METHOD = "scrypt"
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,80}$")

# Checked against when the user does not exist, so a wrong user name costs the
# same time as a wrong password (no user-name probing by timing).
_DUMMY_HASH = generate_password_hash("not-a-real-password", method=PASSWORD_METHOD)


@dataclasses.dataclass(frozen=True)
class UserInfo:
    id: int
    username: str
    role: str
    created_at: dt.datetime


def _info(u: User) -> UserInfo:
    return UserInfo(id=u.id, username=u.username, role=u.role, created_at=u.created_at)


def validate_username(username: str) -> str:
    username = (username or "").strip()
    if not _USERNAME_RE.match(username):
        raise InvalidInput(
            "user name must be 1-80 characters: letters, digits, and . _ @ -", field="username"
        )
    return username


def validate_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"password must have at most {MAX_PASSWORD_LENGTH} characters", field="password")
    return password


def add_user(db: Database, username: str, password: str, *, role: str = "supervisor") -> UserInfo:
    username = validate_username(username)
    validate_password(password)
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    with db.session() as s:
        if s.scalar(sa.select(User.id).where(User.username == username)) is not None:
            raise Conflict(f"user {username!r} already exists", field="username")
        user = User(username=username, password_hash=generate_password_hash(password, method=PASSWORD_METHOD),
                    role=role)
        s.add(user)
        s.flush()
        logger.info("dashboard user %s added (role %s)", username, role)
        return _info(user)


def set_password(db: Database, username: str, password: str) -> None:
    validate_password(password)
    with db.session() as s:
        user = s.scalar(sa.select(User).where(User.username == username))
        if user is None:
            raise NotFound(f"no user {username!r}", field="username")
        user.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)


def list_users(db: Database) -> list[UserInfo]:
    with db.session() as s:
        return [_info(u) for u in s.scalars(sa.select(User).order_by(User.username))]


def get_user(db: Database, user_id: int) -> UserInfo | None:
    with db.session() as s:
        user = s.get(User, user_id)
        return _info(user) if user else None


def authenticate(db: Database, username: str, password: str) -> UserInfo | None:
    """The user if name and password match, else None (same cost either way)."""
    username = (username or "").strip()
    if not username or not password or len(password) > MAX_PASSWORD_LENGTH:
        return None
    with db.session() as s:
        user = s.scalar(sa.select(User).where(User.username == username))
        if user is None:
            check_password_hash(_DUMMY_HASH, password)
            return None
        if not check_password_hash(user.password_hash, password):
            return None
        return _info(user)
