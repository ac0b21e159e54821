# The two commands of the quick start:
#   make demo   set up, then one conversation on the embedded llama-server, analysed
#   make test   set up (with the test tools, chromium and the vLLM tier), then the whole test suite
# For developers:
#   make test-fast   the tests that start no server and no browser (seconds, not minutes)
#   make lint        ruff and mypy, as CI runs them
#   make setup-vllm  the vLLM (CPU) tier alone: .venv-vllm and the bundled model converted for it;
#                    when it cannot be set up, `make test` goes on and skips the vLLM tests, saying so
PY := .venv/bin/python

.PHONY: demo test test-fast lint setup setup-dev setup-vllm bench clean

setup:
	@bash scripts/setup.sh

setup-dev:
	@bash scripts/setup.sh --dev

setup-vllm:
	@bash scripts/setup_vllm.sh --no-check || echo "setup-vllm: the vLLM tier could not be set up; its tests will be skipped"

demo: setup
	@./parrot.sh 1 config.json
	@$(PY) analyze.py "$$(ls -td parrot_2*/ | head -n 1)"

test: setup-dev setup-vllm
	@$(PY) -m pytest -q

test-fast: setup-dev
	@$(PY) -m pytest -q -m "not server and not browser"

lint: setup-dev
	@$(PY) -m ruff check .
	@$(PY) -m mypy

bench: setup-dev
	$(PY) bench/bench_parrot.py --tokens 8192
	$(PY) bench/bench_batch.py --user-cache-reuse 16
	$(PY) bench/bench_analyze.py
	$(PY) bench/bench_view.py

clean:
	rm -rf .venv .venv-vllm .pytest_cache .mypy_cache .ruff_cache
