#!/bin/sh
# Answer one deletion request: unlearn the ids of FORGET_LIST with the settings of the config
# file (model, data, method, and the audit gates of its [audit] table), then print the audit.
#
#   answer-deletion-request.sh FORGET_LIST [MODEL]
#
# MODEL defaults to the file's `model`. Environment: CONFIG (default ./rfau.toml); REQUIRE='KEY
# OP NUMBER', one more gate (it replaces the file's gates, as any --require flag does); PYTHON
# (default python3). The output goes where `rfau config` says: the file's `out`, else
# rfau-out/<first 12 hex of the list's sha256>/. Exit status: 0 answered and every gate held;
# 1 a gate failed (the output is kept, for the audit to be read); 2 bad input; 3 the run
# failed. Needs rfau on PATH; reads the JSON with jq when installed, else with python.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
    echo "usage: $0 FORGET_LIST [MODEL]" >&2
    exit 2
fi
forget=$1
model=${2:-}
config=${CONFIG:-rfau.toml}
python=${PYTHON:-python3}

# rfau_request WORDS...: `rfau --config CONFIG WORDS... --forget LIST [--model MODEL]`, the
# request's own flags; everything else comes from the config file.
rfau_request() {
    if [ -n "$model" ]; then
        rfau --config "$config" "$@" --forget "$forget" --model "$model"
    else
        rfau --config "$config" "$@" --forget "$forget"
    fi
}

# json_get FILE KEY: one value of a JSON file, KEY a jq path such as .metrics.after.forget.acc
json_get() {
    if command -v jq >/dev/null 2>&1 && [ -z "${RFAU_NO_JQ:-}" ]; then
        jq -r "$2" "$1"
    else
        "$python" -c '
import json, sys
value = json.load(open(sys.argv[1]))
for part in sys.argv[2].lstrip(".").split("."):
    value = value[part] if isinstance(value, dict) else None
print("null" if value is None else value)
' "$1" "$2"
    fi
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Where the answer will be written, resolved exactly as the run resolves it.
rfau_request config unlearn --json > "$work/settings.json"
out=$(json_get "$work/settings.json" .settings.out.value)
echo "answering $forget -> $out" >&2

status=0
rfau_request unlearn --json --quiet ${REQUIRE:+--require "$REQUIRE"} > "$work/report.json" || status=$?
if [ "$status" -ne 0 ] && [ "$status" -ne 1 ]; then
    exit "$status"  # bad input (2) or a failed run (3): rfau said why on stderr
fi

echo "output:          $out"
echo "forget list:     $(json_get "$work/report.json" .inputs.forget_list_sha256)"
echo "rows forgotten:  $(json_get "$work/report.json" .forget_count)"
echo "D_f accuracy:    $(json_get "$work/report.json" .metrics.before.forget.acc) -> $(json_get "$work/report.json" .metrics.after.forget.acc)"
echo "test accuracy:   $(json_get "$work/report.json" .metrics.before.test.acc) -> $(json_get "$work/report.json" .metrics.after.test.acc)"
echo "every request:   $(json_get "$work/report.json" .metrics.after.sizes.forget_all) rows, D_f accuracy $(json_get "$work/report.json" .metrics.after.forget_all.acc) (ledger: rfau ledger $out)"
if [ "$status" -eq 1 ]; then
    echo "an audit gate failed: the model still remembers; see $out/report.json" >&2
fi
exit "$status"
