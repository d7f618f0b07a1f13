#!/bin/sh
# make demo: the main job on a fresh machine, with no API key and no network.
#
# Creates ./demo/ (a previous one is wiped): an autopack database with the ten-phase
# telemetry seed run, the LLM stand-in (tests/llm_standin.py) on a free loopback port, and
# a batch drain by autopack-supervisor with four workers against it. Then db check and a
# summary. Exits 0 when every phase completed.
#
# AUTOPACK_BIN names the directory of the binaries (make sets it; default build/rel/bin).
set -eu

SRC=$(cd "$(dirname "$0")/.." && pwd)
BIN=${AUTOPACK_BIN:-$SRC/build/rel/bin}
DEMO=demo
URL=sqlite:///$DEMO/autopack.db
KEY=demo-key-for-the-local-stand-in
MODEL=claude-sonnet-4-5
STANDIN_PID=

say() {
	printf '\n==> %s\n' "$*"
}

die() {
	printf 'autopack demo: %s\n' "$*" >&2
	exit 1
}

# Stop the stand-in if it is still running.
cleanup() {
	if [ -n "$STANDIN_PID" ]; then
		kill "$STANDIN_PID" 2>/dev/null || true
		wait "$STANDIN_PID" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for b in autopack-ctl autopack-supervisor autopack-worker; do
	[ -x "$BIN/$b" ] || die "$BIN/$b not found; run make first"
done
if [ -x /usr/bin/python3 ]; then
	PY=/usr/bin/python3
else
	PY=$(command -v python3) || die "python3 not found (the LLM stand-in needs it)"
fi
if [ "$(id -u)" = 0 ]; then
	echo "note: running as root, phase code could read the API key from a worker's memory; run real drains as an ordinary user (README, \"API keys\")"
fi

say "fresh demo directory $PWD/$DEMO"
rm -rf "$DEMO"
mkdir "$DEMO"

say "autopack-ctl db init (database $URL)"
"$BIN/autopack-ctl" --db "$URL" db init

say "autopack-ctl seed telemetry-run --workspace $DEMO/workspace"
"$BIN/autopack-ctl" --db "$URL" seed telemetry-run --workspace "$DEMO/workspace"

say "starting the LLM stand-in (Anthropic Messages API on 127.0.0.1; no network, no real key)"
"$PY" "$SRC/tests/llm_standin.py" --port-file "$DEMO/llm.port" \
	--log "$DEMO/llm-requests.log" --expect-key "$KEY" --max-seconds 600 \
	2>"$DEMO/llm-standin.err" &
STANDIN_PID=$!
i=0
while [ ! -s "$DEMO/llm.port" ]; do
	i=$((i + 1))
	[ "$i" -le 200 ] || die "the LLM stand-in did not start; see $DEMO/llm-standin.err"
	kill -0 "$STANDIN_PID" 2>/dev/null ||
		die "the LLM stand-in exited; see $DEMO/llm-standin.err"
	sleep 0.05
done
PORT=$(cat "$DEMO/llm.port")
echo "stand-in listening on http://127.0.0.1:$PORT"

say "autopack-supervisor --workers 4 --exit-when-drained (against the stand-in)"
rc=0
ANTHROPIC_API_KEY=$KEY "$BIN/autopack-supervisor" --db "$URL" --workers 4 \
	--exit-when-drained --llm-provider anthropic \
	--llm-base-url "http://127.0.0.1:$PORT" --model "$MODEL" || rc=$?
[ "$rc" -eq 0 ] || die "the supervisor exited with status $rc"

say "autopack-ctl db check"
"$BIN/autopack-ctl" --db "$URL" db check

say "summary"
"$PY" - "$DEMO" <<'EOF'
import os
import sqlite3
import sys

demo = sys.argv[1]
con = sqlite3.connect("file:%s?mode=ro" % os.path.join(demo, "autopack.db"), uri=True)
q = lambda sql: con.execute(sql).fetchall()
states = q("SELECT state, count(*) FROM phases GROUP BY state ORDER BY state")
print("phases by state:  " + ", ".join("%s %d" % s for s in states))
kinds = q("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")
print("events committed: %d (%s)" % (sum(n for _, n in kinds),
                                     ", ".join("%s %d" % k for k in kinds)))
print("\n%-28s %-22s %9s %7s %7s" % ("phase", "category/complexity", "predicted",
                                      "actual", "budget"))
for row in q("SELECT v.phase_id, v.category || '/' || v.complexity,"
             " v.predicted_output_tokens, v.actual_output_tokens, v.selected_budget"
             " FROM token_estimation_v2_events v ORDER BY v.event_id"):
    print("%-28s %-22s %9d %7d %7d" % row)
ws = q("SELECT workspace FROM runs")[0][0]
files = sorted(os.listdir(os.path.join(ws, "examples", "telemetry_utils")))
print("\nfiles written:    %s/examples/telemetry_utils/ (%d): %s" % (
    os.path.relpath(ws), len(files), " ".join(files)))
print("check logs:       %s/.autopack/logs/" % os.path.relpath(ws))
print("LLM requests:     %s/llm-requests.log" % demo)
print("database:         %s/autopack.db (autopack-ctl --db sqlite:///%s/autopack.db db check)"
      % (demo, demo))
left = [s for s in states if s[0] != "COMPLETE"]
if left:
    print("\nautopack demo: not every phase completed", file=sys.stderr)
    sys.exit(1)
print("\nThe drain completed every phase.")
EOF
