#!/bin/sh
# Command-target deploy script for the demo: stop the instance this environment runs, start the
# release in $CONVEYOR_WORKDIR on $DEMO_PORT, and wait until it answers its smoke check.
# (A stop-then-start; Conveyor's `local` target does zero-downtime rolling updates instead.)
set -eu
PIDFILE="$CONVEYOR_STATE_DIR/app.pid"
if [ -f "$PIDFILE" ]; then
  OLD=$(cat "$PIDFILE")
  kill "$OLD" 2>/dev/null || true
  # wait (bounded) for the old instance to let go of the port
  i=0
  while kill -0 "$OLD" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  rm -f "$PIDFILE"
fi
cd "$CONVEYOR_WORKDIR"
setsid python3 app.py --port "$DEMO_PORT" >> "$CONVEYOR_STATE_DIR/app.log" 2>&1 < /dev/null &
echo $! > "$PIDFILE"
python3 smoke.py "http://127.0.0.1:$DEMO_PORT"
echo "$CONVEYOR_SERVICE $CONVEYOR_VERSION serving in $CONVEYOR_ENV on http://127.0.0.1:$DEMO_PORT"
