"""The ``raftwal`` command and its tools, beside the library: ``main`` (the
subcommands), ``bench``, ``diskcheck``, ``etcd_decode``. Nothing in the
library imports from here."""
