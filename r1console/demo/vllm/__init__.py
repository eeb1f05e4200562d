"""The simulated vLLM server's parts: HTTP/1.1 framing, the engine, token text, version shapes."""
