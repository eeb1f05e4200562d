"""The batch fault rows of ``bench/faults_batch.py`` (which documents them and prints their table):
the processes they drive (``procs``), how they count results (``counting``), and one module a row
or a pair of rows that share a shape."""
