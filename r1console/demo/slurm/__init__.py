"""The simulated SLURM's parts: the job model, shared formats, one module per emulated command, and the job's life.

``SimCluster`` (``r1console.demo.sim_cluster``) keeps the cluster's state, clock and controls, and
dispatches ``argv[0]`` to the command mixins here: ``sbatch``, ``squeue``, ``scontrol``, ``sacct``,
``scancel``, ``srun`` (with ``nvidia-smi``) and ``sinfo``. The job's life is mixins too: ``playback``
(scheduler, timeline played into the job's files), ``serving`` (its vLLM server, port forwards) and
``ending`` (exit, scancel, time limit; the accounting ``sacct`` reads).
"""
