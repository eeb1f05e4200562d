"""The demo: a simulated SLURM cluster and a simulated vLLM server, behind the real interfaces.

``sim_engine``    pure scheduling model (slots, FIFO queue, KV blocks, step clock calibrated on the seed)
``sim_text``      deterministic R1-style reasoning/answer text
``sim_versions``  what a given vLLM version's responses, errors and metrics look like
``sim_logs``      vLLM/uvicorn log lines (startup, access, periodic stats) for a version
``sim_server``    the OpenAI-compatible HTTP server on asyncio streams (`r1console sim-server`)
``sim_job``       one simulated job: its script read back, its timeline, its GPU memory model
``sim_cluster``   the simulated SLURM: job table, scheduler, log playback, SLURM command output
``sim_transport`` a Transport that answers SLURM commands from the SimCluster, the rest for real
``cluster``       ``open_demo_session()``: a ClusterSession over all of it (what `r1console demo` runs)
"""
