"""The demo: a simulated SLURM cluster and a simulated vLLM server, behind the real interfaces.

``vllm/http11``    HTTP/1.1 framing as uvicorn speaks it (shared with the tests' scripted server)
``vllm/engine``    pure scheduling model (slots, FIFO queue, KV blocks, step clock calibrated on the seed);
                   its parts are ``vllm/calibration`` (decode curve, KV capacity, R1 lengths), ``vllm/request``
                   and ``vllm/metrics``
``vllm/text``      deterministic R1-style reasoning/answer text
``vllm/versions``  what a given vLLM version's responses and errors look like; its streamed chunks are in
                   ``vllm/streams``, its ``/metrics`` text in ``vllm/metrics_text``
``sim_logs``       vLLM/uvicorn log lines (startup, access, periodic stats) for a version
``sim_server``     the OpenAI-compatible HTTP server on asyncio streams (`r1console sim-server`); its parts
                   are ``vllm/server`` (routes), ``vllm/api`` (OpenAI bodies), ``vllm/faults``, ``vllm/config``
``sim_job``        one simulated job: its script read back, its timeline, its GPU memory model; its parts
                   are in ``slurm/job/`` (script, context, timeline, faults, gpu, hostlist)
``sim_cluster``    the simulated SLURM: state, clock, controls; its commands (``slurm/sbatch``, ``squeue``…)
                   and the job's life (``slurm/playback``, ``serving``, ``ending``) are mixins in ``slurm/``
``transport``      a Transport that answers SLURM commands from the SimCluster, the rest for real
``cluster``        ``open_demo_session()``: a ClusterSession over all of it (what `r1console demo` runs)

``sim_engine``, ``sim_text``, ``sim_versions`` and ``sim_transport`` are aliases of the moved modules.
"""
