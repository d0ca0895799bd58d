"""What the functional tests and the benchmarks both build on: handler worlds on moto and the Slack stand-in.

No pytest here (the benchmarks run without it); the tests' fixtures and event files stay in tests/.
"""
