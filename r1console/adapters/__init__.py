"""Async I/O around the headless core: transports, SLURM client, vLLM HTTP client, runners.

Modules here may touch the network and subprocesses; they never import textual.
"""
