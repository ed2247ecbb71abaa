"""AuthService rules: accounts, logins, passwords, verification, waitlist.

Two properties shape this module:
- No account enumeration where the contract promises it: a wrong email and a
  wrong password get the same answer after the same Argon2 work, and
  RequestPasswordReset answers OK either way.
- Password checks are counted in their own committed transaction before
  the password is checked (and un-counted when it was right): counting only
  after a failure would let parallel guesses all pass the limit check before
  any of them is counted, and counting inside the request's transaction would
  let the rollback that protects data from bad input erase the evidence.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from parley_server.accounts.admin_guard import ensure_another_active_admin, is_active_admin, lock_admin_guard
from parley_server.accounts.email import EmailSender, EmailTemplates
from parley_server.accounts.passwords import Passwords
from parley_server.accounts.session_service import LOCKED_OUT_STATES, SessionService, TokenPair
from parley_server.accounts.tokens import hash_secret, new_secret
from parley_server.common.caller import Caller
from parley_server.common.clock import utcnow
from parley_server.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Reason,
    Unauthenticated,
)
from parley_server.common.rate_limiter import Limit, RateLimiter
from parley_server.common.validation import MAX_DISPLAY_NAME_LENGTH, MAX_PASSWORD_LENGTH, Violations
from parley_server.db.database import Database, rowcount
from parley_server.db.models import EmailToken, Invite, Role, TokenPurpose, User, UserKind, UserState, WaitlistEntry

VERIFICATION_TOKEN_TTL = timedelta(hours=48)
RESET_TOKEN_TTL = timedelta(hours=1)
INVITE_TTL = timedelta(days=14)
MAX_WAITLIST_NOTE_LENGTH = 1000
PROFILE_PATHS = {"display_name"}


@dataclass(frozen=True)
class AuthLimits:
    """The rate limits AuthService enforces."""

    login_per_email: Limit
    login_per_client: Limit
    verification_emails: Limit
    reset_emails: Limit

    @property
    def longest_window(self) -> timedelta:
        """How long a counter can matter: housekeeping deletes those older."""
        limits = (self.login_per_email, self.login_per_client, self.verification_emails, self.reset_emails)
        return max(limit.window for limit in limits)


class AuthService:
    def __init__(
        self,
        database: Database,
        sessions: SessionService,
        passwords: Passwords,
        email: EmailSender,
        templates: EmailTemplates,
        limiter: RateLimiter,
        limits: AuthLimits,
        *,
        waitlist_enabled: bool,
    ) -> None:
        self._db = database
        self._sessions = sessions
        self._passwords = passwords
        self._email = email
        self._templates = templates
        self._limiter = limiter
        self._limits = limits
        self._waitlist_enabled = waitlist_enabled

    # -- registration and verification ------------------------------------

    async def register(self, email: str, password: str, display_name: str, invite_code: str) -> User:
        """Create an account (PENDING_VERIFICATION or WAITLISTED) and email a verification link."""
        v = Violations()
        email = v.email("email", email)
        v.new_password("password", password, email=email)
        display_name = v.text("display_name", display_name, max_length=MAX_DISPLAY_NAME_LENGTH)
        invite_code = v.text("invite_code", invite_code, max_length=200)
        v.raise_if_any()
        password_hash = await self._passwords.hash(password)
        token = new_secret()
        try:
            async with self._db.transaction() as db:
                if await self._find_user(db, email) is not None:
                    raise AlreadyExists("an account with this email already exists", reason=Reason.EMAIL_TAKEN)
                state = UserState.PENDING_VERIFICATION
                if self._waitlist_enabled and not await self._redeem_invite(db, invite_code, email):
                    state = UserState.WAITLISTED
                    await self._add_to_waitlist(db, email, "")
                user = User(email=email, password_hash=password_hash, display_name=display_name, state=state)
                db.add(user)
                await db.flush()
                self._add_email_token(db, user, TokenPurpose.VERIFY_EMAIL, token, VERIFICATION_TOKEN_TTL)
        except IntegrityError as exc:  # a concurrent registration won the race
            raise AlreadyExists("an account with this email already exists", reason=Reason.EMAIL_TAKEN) from exc
        await self._email.send(self._templates.verification(email, token))
        return user

    async def verify_email(self, token: str) -> User:
        v = Violations()
        v.present("token", token)
        v.raise_if_any()
        async with self._db.transaction() as db:
            user = await self._use_email_token(db, token, TokenPurpose.VERIFY_EMAIL)
            user.email_verified = True
            if user.state is UserState.PENDING_VERIFICATION:
                user.state = UserState.ACTIVE
        self._sessions.forget_user(user.id)
        return user

    async def resend_verification_email(self, caller: Caller) -> None:
        async with self._db.transaction() as db:
            user = await self._require_user(db, caller.user_id)
            if user.email_verified:
                raise FailedPrecondition("the email address is already verified", reason=Reason.ALREADY_VERIFIED)
            await self._limiter.hit_and_check(
                db, self._limits.verification_emails, str(user.id), "too many verification emails; try later"
            )
            token = new_secret()
            self._add_email_token(db, user, TokenPurpose.VERIFY_EMAIL, token, VERIFICATION_TOKEN_TTL)
        await self._email.send(self._templates.verification(user.email, token))

    # -- login and sessions -----------------------------------------------

    async def login(self, email: str, password: str, client_address: str) -> tuple[TokenPair, User]:
        v = Violations()
        email = v.email("email", email)
        v.present("password", password, max_length=MAX_PASSWORD_LENGTH)
        v.raise_if_any()
        await self._begin_password_attempt(email, client_address, "too many failed logins; try again later")
        async with self._db.transaction() as db:
            user = await self._find_user(db, email)
        if not await self._passwords.verify(user.password_hash if user else None, password):
            raise Unauthenticated("email or password is wrong", reason=Reason.INVALID_CREDENTIALS)
        assert user is not None
        async with self._db.transaction() as db:
            await self._password_was_right(db, email, client_address)
        if user.state is UserState.WAITLISTED:
            raise PermissionDenied("this account is on the waitlist", reason=Reason.ACCOUNT_WAITLISTED)
        if user.state is UserState.DISABLED:
            raise PermissionDenied("this account is disabled", reason=Reason.ACCOUNT_DISABLED)
        async with self._db.transaction() as db:
            await self._limiter.reset(db, self._limits.login_per_email, email)
            user = await self._require_user(db, user.id)
            user.last_login_time = utcnow()
            tokens = await self._sessions.open(db, user, client_address)
        return tokens, user

    async def refresh(self, refresh_token: str) -> TokenPair:
        v = Violations()
        v.present("refresh_token", refresh_token)
        v.raise_if_any()
        return await self._sessions.rotate(refresh_token)

    async def logout(self, caller: Caller, refresh_token: str, all_sessions: bool) -> None:
        v = Violations()
        v.text("refresh_token", refresh_token, max_length=512)
        v.raise_if_any()
        async with self._db.transaction() as db:
            if all_sessions:
                await self._sessions.revoke_all(db, caller.user_id)
                return
            # Logout is for sessions only (no scope option), so the caller has one.
            session_id = caller.session_id
            if refresh_token:
                session = await self._sessions.session_of_refresh_token(db, refresh_token)
                if session is None or session.user_id != caller.user_id:
                    raise NotFound("no session of yours has this refresh token", reason=Reason.SESSION_NOT_FOUND)
                session_id = session.id
            if session_id is not None:
                await self._sessions.revoke(db, session_id)

    # -- profile and passwords ----------------------------------------------

    async def get_user(self, caller: Caller) -> User:
        async with self._db.transaction() as db:
            return await self._require_user(db, caller.user_id)

    async def update_profile(self, caller: Caller, display_name: str, paths: list[str]) -> User:
        v = Violations()
        v.update_mask(paths, PROFILE_PATHS)
        display_name = v.text("user.display_name", display_name, max_length=MAX_DISPLAY_NAME_LENGTH)
        v.raise_if_any()
        async with self._db.transaction() as db:
            user = await self._require_user(db, caller.user_id)
            user.display_name = display_name
        return user

    async def change_password(self, caller: Caller, old_password: str, new_password: str) -> None:
        v = Violations()
        v.present("old_password", old_password, max_length=MAX_PASSWORD_LENGTH)
        v.raise_if_any()
        async with self._db.transaction() as db:
            user = await self._require_user(db, caller.user_id)
        v.new_password("new_password", new_password, email=user.email)
        v.raise_if_any()
        await self._confirm_password(user, old_password, "old_password")
        new_hash = await self._passwords.hash(new_password)
        async with self._db.transaction() as db:
            await db.execute(update(User).where(User.id == user.id).values(password_hash=new_hash))
            await self._sessions.revoke_all(db, user.id, keep=caller.session_id)

    async def request_password_reset(self, email: str) -> None:
        """Email a reset token if the account exists; the answer never says."""
        v = Violations()
        email = v.email("email", email)
        v.raise_if_any()
        token = new_secret()
        async with self._db.transaction() as db:
            user = await self._find_user(db, email)
            # Counted for unknown emails too, so the work done does not differ.
            count = await self._limiter.hit(db, self._limits.reset_emails, email)
            # Locked-out accounts (disabled, waitlisted) could not use the token anyway.
            if user is None or user.state in LOCKED_OUT_STATES or count > self._limits.reset_emails.limit:
                return
            self._add_email_token(db, user, TokenPurpose.RESET_PASSWORD, token, RESET_TOKEN_TTL)
        await self._email.send(self._templates.password_reset(email, token))

    async def reset_password(self, token: str, new_password: str) -> None:
        v = Violations()
        v.present("token", token)
        v.present("new_password", new_password, max_length=MAX_PASSWORD_LENGTH)
        v.raise_if_any()
        async with self._db.transaction() as db:
            user = await self._use_email_token(db, token, TokenPurpose.RESET_PASSWORD)
            v.new_password("new_password", new_password, email=user.email)
            v.raise_if_any()
            user.password_hash = await self._passwords.hash(new_password)
            # The reset link proved control of the mailbox.
            user.email_verified = True
            if user.state is UserState.PENDING_VERIFICATION:
                user.state = UserState.ACTIVE
            await self._sessions.revoke_all(db, user.id)
            await self._limiter.reset(db, self._limits.login_per_email, user.email)
        self._sessions.forget_user(user.id)

    async def delete_account(self, caller: Caller, password: str) -> None:
        v = Violations()
        v.present("password", password, max_length=MAX_PASSWORD_LENGTH)
        v.raise_if_any()
        async with self._db.transaction() as db:
            user = await self._require_user(db, caller.user_id)
        await self._confirm_password(user, password, "password")
        await self.delete_user(user.id)

    async def delete_user(self, user_id: uuid.UUID) -> None:
        """Delete an account and, through cascading keys, all it owns; never the last active admin."""
        async with self._db.transaction() as db:
            await lock_admin_guard(db)
            user = await db.get(User, user_id)
            if user is not None and is_active_admin(user):
                await ensure_another_active_admin(db, user_id)
            await db.execute(delete(User).where(User.id == user_id))
        self._sessions.forget_user(user_id)

    # -- waitlist and invites -----------------------------------------------

    async def join_waitlist(self, email: str, note: str) -> int:
        """Put email on the waitlist (idempotent); returns its position, 0 once approved."""
        v = Violations()
        email = v.email("email", email)
        note = v.text("note", note, max_length=MAX_WAITLIST_NOTE_LENGTH)
        v.raise_if_any()
        async with self._db.transaction() as db:
            entry = await self._add_to_waitlist(db, email, note)
            if entry.approve_time is not None:
                return 0
            ahead = await db.scalar(
                select(func.count())
                .select_from(WaitlistEntry)
                .where(WaitlistEntry.approve_time.is_(None), WaitlistEntry.seq <= entry.seq)
            )
            return int(ahead or 0)

    async def create_invite(self, email: str | None) -> str:
        """A single-use invite code (optionally bound to one email), emailed when bound."""
        v = Violations()
        bound = v.email("email", email) if email else None
        v.raise_if_any()
        code = new_secret()
        async with self._db.transaction() as db:
            db.add(Invite(code_hash=hash_secret(code), email=bound, expire_time=utcnow() + INVITE_TTL))
        if bound:
            await self._email.send(self._templates.invite(bound, code))
        return code

    async def notify_account_activated(self, email: str) -> None:
        """Tell a waitlisted account it was let in (AdminService calls this after its commit)."""
        await self._email.send(self._templates.account_activated(email))

    async def create_admin(self, email: str, password: str) -> User:
        """Create an active, verified administrator, or promote an existing account."""
        v = Violations()
        email = v.email("email", email)
        v.new_password("password", password, email=email)
        v.raise_if_any()
        password_hash = await self._passwords.hash(password)
        async with self._db.transaction() as db:
            user = await self._find_user(db, email)
            if user is None:
                user = User(email=email, password_hash=password_hash, state=UserState.ACTIVE)
                db.add(user)
            user.password_hash = password_hash
            user.role = Role.ADMIN
            user.state = UserState.ACTIVE
            user.email_verified = True
            await db.flush()
        self._sessions.forget_user(user.id)
        return user

    # -- helpers ------------------------------------------------------------

    async def _find_user(self, db: AsyncSession, email: str) -> User | None:
        """The person with this email; never a service account, so none can log in or reset a password."""
        return (
            await db.execute(select(User).where(User.email == email, User.kind == UserKind.USER))
        ).scalar_one_or_none()

    async def _require_user(self, db: AsyncSession, user_id: uuid.UUID) -> User:
        user = await db.get(User, user_id)
        if user is None:
            raise Unauthenticated("account no longer exists", reason=Reason.SESSION_REVOKED)
        return user

    async def _begin_password_attempt(self, email: str, client: str, message: str) -> None:
        """Count a password check before making it (committed at once), or refuse it
        when the limit is used up; a refused attempt is not counted."""
        async with self._db.transaction() as db:
            await self._limiter.hit_and_check(db, self._limits.login_per_email, email, message)
            if client:
                await self._limiter.hit_and_check(db, self._limits.login_per_client, client, message)

    async def _password_was_right(self, db: AsyncSession, email: str, client: str) -> None:
        """Un-count an attempt whose password was right: only failures use up the limit."""
        await self._limiter.release(db, self._limits.login_per_email, email)
        if client:
            await self._limiter.release(db, self._limits.login_per_client, client)

    async def _confirm_password(self, user: User, password: str, field: str) -> None:
        """Re-check the password of a logged-in user; failures count like failed logins."""
        await self._begin_password_attempt(user.email, "", "too many wrong passwords; try again later")
        if not await self._passwords.verify(user.password_hash, password):
            raise InvalidArgument([FieldViolation(field, "is wrong")], reason=Reason.WRONG_PASSWORD)
        async with self._db.transaction() as db:
            await self._password_was_right(db, user.email, "")

    def _add_email_token(self, db: AsyncSession, user: User, purpose: TokenPurpose, token: str, ttl: timedelta) -> None:
        db.add(EmailToken(token_hash=hash_secret(token), user_id=user.id, purpose=purpose, expire_time=utcnow() + ttl))

    async def _use_email_token(self, db: AsyncSession, token: str, purpose: TokenPurpose) -> User:
        """Consume a single-use email token; its user, locked for update."""
        row = (
            await db.execute(
                select(EmailToken, User)
                .join(User, EmailToken.user_id == User.id)
                .where(EmailToken.token_hash == hash_secret(token), EmailToken.purpose == purpose)
                .with_for_update()
            )
        ).one_or_none()
        if row is None:
            raise FailedPrecondition("the token is not valid", reason=Reason.TOKEN_INVALID)
        email_token, user = row
        now = utcnow()
        if email_token.use_time is not None:
            raise FailedPrecondition("the token was already used", reason=Reason.TOKEN_USED)
        if email_token.expire_time <= now:
            raise FailedPrecondition("the token has expired", reason=Reason.TOKEN_EXPIRED)
        if user.state in LOCKED_OUT_STATES and purpose is TokenPurpose.RESET_PASSWORD:
            raise FailedPrecondition("this account cannot reset its password", reason=Reason.ACCOUNT_LOCKED)
        email_token.use_time = now
        return user

    async def _redeem_invite(self, db: AsyncSession, code: str, email: str) -> bool:
        if not code:
            return False
        result = await db.execute(
            update(Invite)
            .where(
                Invite.code_hash == hash_secret(code),
                Invite.use_time.is_(None),
                Invite.expire_time > utcnow(),
                (Invite.email.is_(None)) | (Invite.email == email),
            )
            .values(use_time=utcnow())
        )
        return bool(rowcount(result))

    async def _add_to_waitlist(self, db: AsyncSession, email: str, note: str) -> WaitlistEntry:
        await db.execute(
            insert(WaitlistEntry)
            .values(id=uuid.uuid4(), email=email, note=note, invite_sent=False)
            .on_conflict_do_nothing(index_elements=[WaitlistEntry.email])
        )
        entry = (await db.execute(select(WaitlistEntry).where(WaitlistEntry.email == email))).scalar_one()
        return entry
