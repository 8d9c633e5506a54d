# The two commands a new user types: `make demo` and `make test`.
# `make demo PORT=9000`, `make demo HOST=0.0.0.0`, `make demo ARGS="--devices 5 --interval 0.2"`
# (plain `=`: only the command line overrides them, never a HOST or PORT in the environment).
.PHONY: demo test lint bench clean mutation

HOST = 127.0.0.1
PORT = 8765
ARGS =

demo:
	@bash scripts/setup-venv.sh
	.venv/bin/framebridge demo --listen $(HOST):$(PORT) $(ARGS)

test:
	@bash scripts/setup-system.sh
	@bash scripts/setup-venv.sh test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/python -m pytest -q
	$(MAKE) -C firmware test
	.venv/bin/python scripts/mutation_quick.py

bench:
	@bash scripts/setup-venv.sh test,bench
	.venv/bin/python benchmarks/codec.py
	.venv/bin/python benchmarks/link.py
	.venv/bin/python benchmarks/bridge.py

# Mutation testing of the pure cores (slow, not in CI; docs/testing.md has the scores).
# `make mutation MUTATE="frames.stream bridge.history"` runs only those modules.
MUTATE =
mutation:
	@bash scripts/setup-venv.sh test,mutation
	.venv/bin/python scripts/mutation.py $(MUTATE)

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache test-output mutants
