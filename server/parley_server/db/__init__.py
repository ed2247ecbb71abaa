"""Database access: models, engine and transactions, migrations, embedded server."""
