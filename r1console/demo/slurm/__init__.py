"""The simulated SLURM's parts: the job model, shared formats, and one module per emulated command.

``SimCluster`` (``r1console.demo.sim_cluster``) keeps the clock, the scheduler and the playback, and
dispatches ``argv[0]`` to the command mixins here: ``squeue``, ``scontrol``, ``sacct``, ``scancel``,
``srun`` (with ``nvidia-smi``) and ``sinfo``.
"""
