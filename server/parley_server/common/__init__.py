"""Rules and mechanics shared by several areas: errors, validation, pagination, idempotency, the caller, the clock."""
