"""Accounts: registration, login, sessions and tokens, email verification, invites and the waitlist."""
