"""Other projects on raftwal: ``pysyncobj`` (a PySyncObj journal)."""
