"""Chat against any OpenAI-compatible server (vLLM, SGLang, llama-server, `main.py serve`)."""
