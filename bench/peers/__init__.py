"""The systems the benchmarks compare satlake with, when they need more than a command line (a server, a schema)."""
