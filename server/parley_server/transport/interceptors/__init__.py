"""Parley's server interceptor (interceptor.py) and its steps, one concern per module."""
