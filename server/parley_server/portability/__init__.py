"""The caller's data as a whole: export, import, delete all, account export (PortabilityService)."""
