"""The cross-replica event bus (PostgreSQL LISTEN/NOTIFY) and the events it carries."""
