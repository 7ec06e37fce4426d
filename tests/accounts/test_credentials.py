"""Passwords and API tokens: argon2id hashes only, look-up by token id, expiry, revocation,
signed access tokens and their key file."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from sqlalchemy import inspect, select, text

from batteryloop.accounts import hashing, sessions
from batteryloop.accounts.errors import INVALID_LOGIN, INVALID_TOKEN, Unauthorized
from batteryloop.accounts.service import Accounts, parse_duration
from batteryloop.errors import Conflict, NotFound, ValidationFailed
from batteryloop.registry.schemas import OrganisationIn
from batteryloop.registry.service import Registry
from batteryloop.store.models import ApiToken, User

PASSWORD = "correct horse battery staple"


def _setup(db) -> None:  # type: ignore[no-untyped-def]
    with db.session() as s:
        reg = Registry(s)
        reg.add_organisation(OrganisationIn(name="Green Loop", roles=["recycler"]))
        reg.add_organisation(OrganisationIn(name="Maker", roles=["manufacturer"]))
        acc = Accounts(s)
        acc.add_user("alice", "Green Loop", ["writer"], PASSWORD)
        acc.add_user("mallory", "Maker", ["reader"], "another long password")


def _token(db, user: str = "alice", **kw) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        row, plaintext = Accounts(s).create_token(user, **kw)
        return row.token_id, plaintext


def _auth(db, bearer: str, **kw):  # type: ignore[no-untyped-def]
    with db.session() as s:
        return Accounts(s).authenticate(bearer, **kw)


def _every_cell(db) -> list[str]:  # type: ignore[no-untyped-def]
    """Every value in every table, as text (bytes both raw and as hex)."""
    cells: list[str] = []
    with db.engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                for value in row:
                    if isinstance(value, (bytes, memoryview)):
                        raw = bytes(value)
                        cells += [raw.decode("latin-1"), raw.hex()]
                    elif value is not None:
                        cells.append(str(value))
    return cells


def test_no_password_or_token_secret_is_stored_in_clear(db) -> None:  # type: ignore[no-untyped-def]
    _setup(db)
    token_id, plaintext = _token(db, label="ci")
    secret = plaintext.split("_", 2)[2]
    cells = _every_cell(db)
    for needle in (PASSWORD, "another long password", plaintext, secret):
        assert not any(needle in cell for cell in cells), needle
    assert any(token_id == cell for cell in cells)  # the public id is there, for the look-up
    with db.session() as s:
        hashes = list(s.scalars(select(User.password_hash))) + list(
            s.scalars(select(ApiToken.secret_hash)))
    assert len(hashes) == 3 and all(h.startswith("$argon2id$") for h in hashes)


def test_the_default_hasher_is_argon2id_rfc9106() -> None:
    from argon2 import PasswordHasher, Type

    default = PasswordHasher()
    assert default.type is Type.ID and default.memory_cost >= 64 * 1024 and default.time_cost >= 2


def test_token_format_and_lookup(db) -> None:  # type: ignore[no-untyped-def]
    _setup(db)
    token_id, plaintext = _token(db, scopes=["write"])
    assert plaintext.startswith(f"blt_{token_id}_") and len(token_id) == 12
    who = _auth(db, plaintext)
    assert who.via == "token" and who.token_id == token_id and who.user_id is not None
    assert who.viewer.user == "alice" and who.viewer.tier == "legitimate_interest"
    assert who.viewer.roles == frozenset({"recycler"}) and who.scopes == frozenset({"write"})
    again = _auth(db, plaintext)  # second use comes from the verified cache: same answer
    assert again == who


def test_a_token_caps_the_tier_and_scopes_and_never_widens_them(db) -> None:  # type: ignore[no-untyped-def]
    _setup(db)
    _, public = _token(db, tier="public")
    assert _auth(db, public).viewer.tier == "public"
    _, readonly = _token(db)
    assert _auth(db, readonly).scopes == frozenset()
    with db.session() as s, pytest.raises(ValidationFailed, match="higher tier"):
        Accounts(s).create_token("alice", tier="authority")
    with db.session() as s, pytest.raises(ValidationFailed, match="scope"):
        Accounts(s).create_token("mallory", scopes=["write"])
    with db.session() as s, pytest.raises(ValidationFailed, match="unknown scope"):
        Accounts(s).create_token("alice", scopes=["root"])


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: "blt_000000000000_" + t.split("_", 2)[2],  # unknown id
        lambda t: t + "x",  # malformed
        lambda t: "blt_",
        lambda t: "not-a-token",
    ],
)
def test_wrong_tokens_are_refused_with_one_message(db, mangle) -> None:  # type: ignore[no-untyped-def]
    _setup(db)
    _, plaintext = _token(db)
    with pytest.raises(Unauthorized) as caught:
        _auth(db, mangle(plaintext))
    assert caught.value.message == INVALID_TOKEN and caught.value.status == 401


def test_expired_revoked_and_disabled_are_refused(db) -> None:  # type: ignore[no-untyped-def]
    _setup(db)
    token_id, plaintext = _token(db, expires=timedelta(minutes=5))
    assert _auth(db, plaintext).token_id == token_id
    with pytest.raises(Unauthorized, match="expired"):
        _auth(db, plaintext, now=datetime.now(UTC) + timedelta(minutes=6))
    with db.session() as s:
        row = Accounts(s).token(token_id)
        row.expires_at = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(Unauthorized):
        _auth(db, plaintext)
    with db.session() as s:
        assert Accounts(s).describe_token(Accounts(s).token(token_id))["state"] == "expired"

    token_id, plaintext = _token(db, expires=None)
    assert _auth(db, plaintext).via == "token"
    with db.session() as s:
        Accounts(s).revoke_token(token_id)
    with pytest.raises(Unauthorized):
        _auth(db, plaintext)

    _, plaintext = _token(db)
    with db.session() as s:
        Accounts(s).disable("alice")
    with pytest.raises(Unauthorized):
        _auth(db, plaintext)
    with db.session() as s, pytest.raises(Conflict):
        Accounts(s).create_token("alice")


def test_sign_in_gives_one_answer_for_every_wrong_part(db) -> None:  # type: ignore[no-untyped-def]
    _setup(db)
    with db.session() as s:
        acc = Accounts(s)
        assert acc.sign_in("Alice", PASSWORD).name == "alice"
        acc.add_user("tokens-only", "Green Loop")
        messages = []
        for name, password in (("alice", "wrong password!!"), ("nobody", PASSWORD),
                               ("tokens-only", PASSWORD), ("alice", "")):
            with pytest.raises(Unauthorized) as caught:
                acc.sign_in(name, password)
            messages.append(caught.value.message)
        assert set(messages) == {INVALID_LOGIN}
        acc.disable("alice")
        with pytest.raises(Unauthorized, match=INVALID_LOGIN):
            acc.sign_in("alice", PASSWORD)


def test_user_rules(db) -> None:  # type: ignore[no-untyped-def]
    _setup(db)
    with db.session() as s:
        acc = Accounts(s)
        with pytest.raises(Conflict):
            acc.add_user("ALICE", "Green Loop")
        with pytest.raises(ValidationFailed, match="password"):
            acc.add_user("short", "Green Loop", password="short")
        with pytest.raises(ValidationFailed, match="role"):
            acc.add_user("x", "Green Loop", ["superuser"])
        with pytest.raises(ValidationFailed, match="user name"):
            acc.add_user("bad name", "Green Loop")
        with pytest.raises(NotFound):
            acc.add_user("y", "No Such Org")
        assert "password_hash" not in acc.describe_user(acc.user("alice"))


def test_signed_access_tokens(db) -> None:  # type: ignore[no-untyped-def]
    _setup(db)
    with db.session() as s:
        body = Accounts(s).access_token("alice", PASSWORD)
    assert body["token_type"] == "bearer" and 0 < body["expires_in"] <= 900
    assert body["scope"] == "write" and body["tier"] == "legitimate_interest"
    who = _auth(db, body["access_token"])
    assert who.via == "password" and who.viewer.user == "alice"
    assert who.viewer.tier == "legitimate_interest" and who.scopes == frozenset({"write"})
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert "tier" not in claims and PASSWORD not in str(claims)  # the tier is read from the db

    with db.session() as s:  # a narrower scope may be asked for
        narrow = Accounts(s).access_token("alice", PASSWORD, scope="")
        assert narrow["scope"] == "write"
        with pytest.raises(ValidationFailed):
            Accounts(s).access_token("alice", PASSWORD, scope="root")

    # tampered, unsigned, wrongly signed, expired: all 401
    forged = [
        body["access_token"][:-2] + ("AA" if not body["access_token"].endswith("AA") else "BB"),
        jwt.encode({**claims, "sub": "2"}, "a guessed key that is long enough!", algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
    ]
    with db.session() as s:
        user = Accounts(s).user("alice")
        past, _ = sessions.issue(user.id, user.session_epoch, frozenset(),
                                 now=datetime.now(UTC) - timedelta(hours=1))
    forged.append(past)
    for token in forged:
        with pytest.raises(Unauthorized, match="invalid"):
            _auth(db, token)

    # a new password signs the user out everywhere
    with db.session() as s:
        Accounts(s).set_password("alice", "a brand new password")
    with pytest.raises(Unauthorized):
        _auth(db, body["access_token"])


def test_the_signing_key_file_is_private(tmp_path) -> None:  # type: ignore[no-untyped-def]
    key = sessions.signing_key(tmp_path)
    path = sessions.key_path(tmp_path)
    assert len(key) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert sessions.signing_key(tmp_path) == key  # made once, then read
    other = tmp_path / "other"
    sessions.signing_key(other)
    p = sessions.key_path(other)
    sessions._keys.pop(p)
    os.chmod(p, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        sessions.signing_key(other)


def test_durations() -> None:
    assert parse_duration("30d") == timedelta(days=30)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("never") is None
    for bad in ("0d", "30", "1y", "-1d", ""):
        with pytest.raises(ValidationFailed):
            parse_duration(bad)


def test_a_rehash_follows_new_parameters(db, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from argon2 import PasswordHasher

    _setup(db)
    with db.session() as s:
        before = Accounts(s).user("alice").password_hash
    monkeypatch.setattr(hashing, "HASHER", PasswordHasher(time_cost=2, memory_cost=2048,
                                                          parallelism=1))
    with db.session() as s:
        Accounts(s).sign_in("alice", PASSWORD)
    with db.session() as s:
        after = Accounts(s).user("alice").password_hash
        assert after != before and "t=2" in after and not hashing.needs_rehash(after)
        assert Accounts(s).sign_in("alice", PASSWORD).password_hash == after
