"""What tests share, one module per concept: servers to start, stubs and
accounts, errors and stored rows to check, fakes of what lies outside Parley.

Test modules import from here, never from each other or from conftest.
"""
