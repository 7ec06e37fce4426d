# The two commands of the README: `make demo` (the platform on an embedded SQLite database, demo
# data included) and `make test` (the whole suite, SQLite and PostgreSQL). Both set up first.
.PHONY: demo test setup bench

.venv/.installed: pyproject.toml scripts/setup.sh scripts/apt-packages.txt
	bash scripts/setup.sh

setup: .venv/.installed

demo: .venv/.installed
	.venv/bin/batteryloop demo

test: .venv/.installed
	bash scripts/test.sh

bench: .venv/.installed
	.venv/bin/python benchmarks/ledger.py
