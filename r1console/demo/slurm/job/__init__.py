"""One simulated SLURM job, in parts: the batch script read back (``script``), what the job prints and
when (``context`` + ``timeline``, with the failures in ``faults``), what its GPUs show (``gpu``), and SLURM's
compressed hostlists (``hostlist``). ``r1console.demo.sim_job`` re-exports the public names.
"""
