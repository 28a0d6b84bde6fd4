"""What the tests and the benchmarks share: stacks run offline through the real program, a stand-in vLLM
server, and bounded start/stop of processes on 127.0.0.1. Fixtures stay in tests/conftest.py."""
