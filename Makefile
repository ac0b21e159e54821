# The two commands of the quick start:
#   make demo   set up, then one conversation on the embedded llama-server, analysed
#   make test   set up (with the test tools and chromium), then the test suite
PY := .venv/bin/python

.PHONY: demo test setup setup-dev bench clean

setup:
	@bash scripts/setup.sh

setup-dev:
	@bash scripts/setup.sh --dev

demo: setup
	@./parrot.sh 1 config.json
	@$(PY) analyze.py "$$(ls -td parrot_2*/ | head -n 1)"

test: setup-dev
	@$(PY) -m pytest -q

bench: setup-dev
	$(PY) bench/bench_parrot.py --tokens 8192
	$(PY) bench/bench_batch.py --user-cache-reuse 16
	$(PY) bench/bench_analyze.py
	$(PY) bench/bench_view.py

clean:
	rm -rf .venv .pytest_cache
