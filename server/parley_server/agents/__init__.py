"""Agents: the catalogue of AI agents, who may use which (visibility, grants, quotas),
and the model providers behind them."""
