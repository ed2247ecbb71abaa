"""Domain services: the rules of Parley, in plain async Python (no protobuf)."""
