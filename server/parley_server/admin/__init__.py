"""Admin: user management, the waitlist and invites from the admin side, and usage statistics."""
