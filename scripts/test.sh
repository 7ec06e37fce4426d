#!/usr/bin/env bash
# The test command: starts PostgreSQL and Mosquitto when they are down, then runs the suite on
# SQLite and PostgreSQL, with the real data in ../shared (BATTERYLOOP_SHARED).
set -uo pipefail
cd "$(dirname "$0")/.."

if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
if ! pgrep -x mosquitto >/dev/null 2>&1; then
  mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
fi

export BATTERYLOOP_TEST_POSTGRES_URL="${BATTERYLOOP_TEST_POSTGRES_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/batteryloop_test}"
export BATTERYLOOP_SHARED="${BATTERYLOOP_SHARED:-$(cd .. && pwd)/shared}"
.venv/bin/python -m pytest -n 2 -q "$@"
code=$?
# pytest exits 5 when it collected no test: that is a failure of the suite, not a pass.
exit $code
