# The two commands a new user types: `make demo` and `make test`.
.PHONY: demo test lint bench clean

demo:
	@bash scripts/setup-venv.sh
	.venv/bin/framebridge demo

test:
	@bash scripts/setup-system.sh
	@bash scripts/setup-venv.sh test
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/python -m pytest -q
	$(MAKE) -C firmware test

bench:
	@bash scripts/setup-venv.sh test,bench
	.venv/bin/python benchmarks/codec.py
	.venv/bin/python benchmarks/link.py
	.venv/bin/python benchmarks/bridge.py

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache test-output
