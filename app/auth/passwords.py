"""Argon2id password hashing."""

from __future__ import annotations

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
# Verified against when the user does not exist, so timing does not reveal valid usernames.
_DUMMY_HASH = _hasher.hash("radsal-dummy-password")

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 256


def use_cheap_hashing_for_tests() -> None:
    """Swap in argon2's cheapest parameters: the default costs ~0.5 s per hash on a busy CI core.

    Only test suites call this; hashes made here still verify under the real parameters (and
    `needs_rehash` upgrades them on the next login).
    """
    global _hasher, _DUMMY_HASH
    _hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    _DUMMY_HASH = _hasher.hash("radsal-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)
