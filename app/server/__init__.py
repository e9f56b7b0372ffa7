"""The local OpenAI-compatible API server (`main.py serve`): an adapter over the engine, no Qt."""
