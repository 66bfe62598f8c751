#!/usr/bin/env bash
# Runs the real `arstream dashboard` in tmux on a copy of the bundled sample feed, as a user
# would, and checks what the screen shows:
#   - the KPI tiles show the values `arstream kpi` prints for the same as-of date;
#   - keys: tabs, `/` filter, `s` sort, Enter drill-down (breadcrumb, open invoices), Esc
#     back, `?` help, `q` quit;
#   - a file landing in the feed changes the tiles (to what `arstream kpi` prints then).
# The sample feed's last month of payments is held back at the start and landed later.
#
#   scripts/check-dashboard.sh            (builds the debug binary if needed)
#   ARSTREAM_BIN=target/release/arstream scripts/check-dashboard.sh
#
# Needs tmux and python3 (only to read `arstream kpi --format json`). Exits non-zero with
# what it expected and the screen it saw.
set -euo pipefail

command -v tmux >/dev/null || { echo "error: this check needs tmux (apt-get install tmux)" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${ARSTREAM_BIN:-$root/target/debug/arstream}
[ -x "$bin" ] || (cd "$root" && cargo build --quiet)
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")

work=$(mktemp -d)
session="arstream-check-$$"
cleanup() {
    tmux kill-session -t "$session" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cp -r "$root/sample-data/feed" "$work/feed"
mv "$work/feed/payments/month=2025-12" "$work/held"
as_of=2025-12-31

# What `arstream kpi` prints, as the tiles write it: "14.09M" and "57.2 d".
kpi() {
    "$bin" --config "$root/arstream.toml" --feed "$1" --state "$2" --as-of "$as_of" kpi --format json 2>/dev/null |
        python3 -c '
import json, sys
k = json.load(sys.stdin)
def compact(v):
    a = abs(v); s = "-" if v < 0 else ""
    if a >= 1e9: return f"{s}{a/1e9:.2f}B"
    if a >= 1e6: return f"{s}{a/1e6:.2f}M"
    if a >= 1e4: return f"{s}{a/1e3:.1f}k"
    return f"{s}{a:.0f}"
print(compact(k["total_ar"]), "{:.1f} d".format(k["dso"]))'
}

# The full feed's KPIs, for after the landing: computed on a copy.
cp -r "$work/feed" "$work/full"
cp -r "$work/held" "$work/full/payments/month=2025-12"
read -r ar_before dso_before < <(kpi "$work/feed" "$work/kpi-before")
read -r ar_after dso_after < <(kpi "$work/full" "$work/kpi-after")
echo "arstream kpi before the landing: Total AR $ar_before, DSO $dso_before; after: $ar_after, $dso_after"
[ "$ar_before" != "$ar_after" ] || { echo "error: the held-back file does not change Total AR" >&2; exit 1; }

screen() { tmux capture-pane -p -t "$session"; }
fail() {
    echo "FAILED: $1" >&2
    echo "--- the screen ---" >&2
    screen >&2 || true
    exit 1
}
# Wait (at most $2 seconds) for the screen to show $1.
wait_for() {
    local deadline=$((SECONDS + ${2:-60}))
    while ((SECONDS < deadline)); do
        screen | grep -qF -- "$1" && return 0
        sleep 0.2
    done
    fail "the screen never showed '$1'"
}
keys() { tmux send-keys -t "$session" "$@"; sleep 0.4; }

tmux new-session -d -s "$session" -x 120 -y 40 \
    "'$bin' --config '$root/arstream.toml' --feed '$work/feed' --state '$work/state' --as-of $as_of dashboard --out '$work/out' --interval 0.2; echo dashboard-exited-\$?; sleep 30"

started=$SECONDS
wait_for "arstream" 5
echo "first frame after $((SECONDS - started)) s or less"
wait_for "refresh #1" 120
wait_for "$ar_before" 30
wait_for "$dso_before" 5
echo "ok: the tiles show Total AR $ar_before and DSO $dso_before, as arstream kpi"

keys 2
wait_for "rank" 120
keys /
for c in s e g m e n t : c r i t i c a l; do tmux send-keys -t "$session" "$c"; done
keys Enter
wait_for "filter 'segment:critical'" 5
rows=$(screen | grep -cE '^│ +[0-9]+ ' || true)
critical=$(screen | grep -E '^│ +[0-9]+ ' | grep -c critical || true)
[ "$rows" -gt 0 ] && [ "$rows" = "$critical" ] || fail "filter segment:critical shows $rows rows of which $critical critical"
echo "ok: the filter keeps $rows critical customers"
keys s
keys s
wait_for "sort rank ↓" 5
echo "ok: sorted on rank, descending"
keys Enter
wait_for "›" 5
wait_for "Open invoices" 60
wait_for "Outreach (" 5
echo "ok: Enter drills into $(screen | grep -o '› C[0-9A-Z]*[^─]*' | head -1)"
keys Escape
wait_for "filter 'segment:critical'" 5
keys "?"
wait_for "any key closes it" 5
keys x
keys 1
echo "ok: Esc back, ? help"

mv "$work/held" "$work/feed/payments/month=2025-12"
landed=$SECONDS
wait_for "refresh #2" 120
wait_for "$ar_after" 60
wait_for "$dso_after" 5
echo "ok: after the landing the tiles show Total AR $ar_after and DSO $dso_after ($((SECONDS - landed)) s)"

keys q
wait_for "dashboard-exited-0" 10
echo "ok: q quits (exit 0)"
echo "dashboard check passed"
