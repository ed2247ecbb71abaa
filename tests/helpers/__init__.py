"""What tests share: servers to start, stubs and accounts, fakes of what lies outside Parley."""
