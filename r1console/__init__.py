"""r1console: deploy, watch and use DeepSeek-R1 on vLLM under SLURM from one console."""

__version__ = "0.1.0"
