"""Server interceptors, one job each: logging, errors, authentication."""
