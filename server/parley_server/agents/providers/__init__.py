"""Model providers: one adapter per vendor wire format behind a common streaming interface."""
