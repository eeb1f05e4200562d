"""The demo: a simulated vLLM server (and, alongside it, a simulated cluster).

``sim_engine``   pure scheduling model (slots, FIFO queue, KV blocks, step clock calibrated on the seed)
``sim_text``     deterministic R1-style reasoning/answer text
``sim_versions`` what a given vLLM version's responses, errors and metrics look like
``sim_logs``     vLLM/uvicorn log lines (startup, access, periodic stats) for a version
``sim_server``   the OpenAI-compatible HTTP server on asyncio streams
"""
