"""Conversations: a user's conversations and their stored messages, titles and search."""
