"""Chat: sending a message and streaming the agent's answer, resuming and watching streams, on any replica."""
