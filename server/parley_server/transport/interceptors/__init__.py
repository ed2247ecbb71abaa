"""Server interceptors, one concern each; transport/server.py orders them."""
