#!/usr/bin/env bash
# scripts/api-fuzz.sh: runs Schemathesis (from PyPI; installed into target/api-fuzz-venv when
# missing) against a release coordinator that this script starts on 127.0.0.1 with a temp
# data dir, loading the schema from its own /openapi.json: once with the admin token and
# once with an account token created through the API (each run with a fresh account of its
# own). Checks: no 5xx, and every response as the document's schemas describe it. The
# coordinator must still answer /healthz afterwards. Prints a summary; exits non-zero on any
# failure; reports (JUnit, NDJSON) stay in target/api-fuzz/.
#
# Bounds (environment): API_FUZZ_MAX_EXAMPLES (per operation, default 30),
# API_FUZZ_MAX_TIME (seconds per run, default 120), API_FUZZ_CHECKS (default
# not_a_server_error,response_schema_conformance,content_type_conformance),
# API_FUZZ_SEED (a fixed seed to reproduce a run).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
max_examples=${API_FUZZ_MAX_EXAMPLES:-30}
max_time=${API_FUZZ_MAX_TIME:-120}
checks=${API_FUZZ_CHECKS:-not_a_server_error,response_schema_conformance,content_type_conformance}
venv=${API_FUZZ_VENV:-$root/target/api-fuzz-venv}
reports=$root/target/api-fuzz
work=$(mktemp -d "${TMPDIR:-/tmp}/gpuspot-api-fuzz.XXXXXX")
coordinator_pid=

cleanup() {
    if [[ -n $coordinator_pid ]]; then
        kill "$coordinator_pid" 2>/dev/null || true
        wait "$coordinator_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
    echo "api-fuzz: $*" >&2
    if [[ -f $work/coordinator.log ]]; then
        echo "--- coordinator log (tail) ---" >&2
        tail -n 30 "$work/coordinator.log" >&2
    fi
    exit 1
}

# Polls "$@" every 0.1 s until it succeeds or $1 seconds have passed.
wait_for() {
    local seconds=$1
    shift
    local deadline=$((SECONDS + seconds))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

json_field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "api-fuzz: building the release coordinator..."
(cd "$root" && cargo build -q --release --bin gpuspot-coordinator)
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
    echo "api-fuzz: installing schemathesis into $venv..."
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet schemathesis
fi
echo "api-fuzz: $("$venv/bin/schemathesis" --version)"

admin_token=api-fuzz-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
GPUSPOT_ADMIN_TOKEN=$admin_token "$root/target/release/gpuspot-coordinator" \
    --config "$root/config/coordinator.toml" --data-dir "$work/data" \
    --http 127.0.0.1:0 --quic 127.0.0.1:0 >"$work/coordinator.log" 2>&1 &
coordinator_pid=$!
wait_for 30 test -s "$work/data/endpoints.json" || fail "no endpoints.json after 30 s"
http=$(json_field "['http']" <"$work/data/endpoints.json")
base=http://$http
wait_for 30 curl -sf "$base/healthz" || fail "no /healthz answer after 30 s"

api() { # METHOD PATH BODY: as the admin, the JSON answer on stdout
    curl -sf -X "$1" -H "Authorization: Bearer $admin_token" \
        -H 'content-type: application/json' -d "$3" "$base$2"
}
# A fresh, credited account per run: the admin run may rotate the token of the account it
# is given, disable it or set its quota to 0 (the document has those routes), which would
# leave the account run nothing to act with.
new_account() { # LABEL: sets account_id and account_token
    local account
    account=$(api POST /v1/accounts "{\"name\":\"api-fuzz-$1\"}") || fail "cannot create an account"
    account_id=$(json_field "['id']" <<<"$account")
    account_token=$(json_field "['token']" <<<"$account")
    api POST "/v1/accounts/$account_id/payments" '{"amount":"1000"}' >/dev/null ||
        fail "cannot credit the account"
}

mkdir -p "$reports"
as_account() { # METHOD PATH BODY
    curl -sf -X "$1" -H "Authorization: Bearer $account_token" \
        -H 'content-type: application/json' -d "$3" "$base$2"
}

# A queued instance and a deployment of the account for each run, named in a config file, so
# the operations with an id in their path reach their handlers instead of only answering 404
# (a run may delete them; the other run has its own).
write_config() { # LABEL FILE
    local instance deployment
    instance=$(as_account POST /v1/instances '{"name":"api-fuzz","gpu":{"models":["H100"]},
        "billing":{"mode":"regular"},"command":["sleep","600"]}') || fail "cannot create an instance"
    deployment=$(as_account POST /v1/deployments '{"name":"api-fuzz","mode":"replicaset",
        "replicas":1,"specs":[{"gpu":{"models":["H100"]}}],"template":{"command":["sleep","600"]}}') ||
        fail "cannot create a deployment"
    cat >"$2" <<TOML
[[operations]]
include-path-regex = "^/v1/instances/\\\\{id\\\\}"
parameters = { "path.id" = "$(json_field "['id']" <<<"$instance")" }

[[operations]]
include-path-regex = "^/v1/deployments/\\\\{id\\\\}"
parameters = { "path.id" = "$(json_field "['id']" <<<"$deployment")" }

[[operations]]
include-path-regex = "^/v1/accounts/\\\\{id\\\\}"
parameters = { "path.id" = "$account_id" }
TOML
}

declare -A verdict=()
run_schemathesis() { # LABEL (admin or account)
    local label=$1 token excluded seed_args=() status=0
    [[ -n ${API_FUZZ_SEED:-} ]] && seed_args=(--seed "$API_FUZZ_SEED")
    new_account "$label"
    token=$admin_token excluded=()
    # An account that rotates its own token answers 401 to the rest of its run.
    [[ $label == account ]] && token=$account_token excluded=(--exclude-path '/v1/accounts/{id}/token')
    write_config "$label" "$work/schemathesis-$label.toml"
    rm -rf "${reports:?}/$label"
    echo
    echo "api-fuzz: === schemathesis with the $label token ==="
    # /v1/events is a never-ending SSE stream: every request would just time out.
    "$venv/bin/schemathesis" --config-file "$work/schemathesis-$label.toml" \
        run "$base/openapi.json" --url "$base" --header "Authorization: Bearer $token" \
        --checks "$checks" --max-examples "$max_examples" --max-time "$max_time" \
        --exclude-path /v1/events "${excluded[@]}" --request-timeout 10 --workers 1 \
        --generation-database none --no-color "${seed_args[@]}" \
        --report junit,ndjson --report-dir "$reports/$label" 2>&1 |
        tee "$work/schemathesis-$label.log" || status=$?
    verdict[$label]=$status
    kill -0 "$coordinator_pid" 2>/dev/null || fail "the coordinator died during the $label run"
    curl -sf --max-time 5 "$base/healthz" >/dev/null ||
        fail "the coordinator stopped answering /healthz after the $label run"
}

# Per run: operations, requests, answers by status, failed checks, and every 5xx request.
summarize() { # LABEL
    python3 - "$reports/$1" <<'PY'
import base64, collections, glob, json, sys, xml.etree.ElementTree as ET
folder = sys.argv[1]
suite = ET.parse(glob.glob(f"{folder}/junit-*.xml")[0]).getroot()
statuses, failed, server_errors = collections.Counter(), collections.Counter(), []
for line in open(glob.glob(f"{folder}/ndjson-*.ndjson")[0]):
    recorder = json.loads(line).get("ScenarioFinished", {}).get("recorder", {})
    for exchange in recorder.get("interactions", {}).values():
        response = exchange.get("response") or {}
        status = response.get("status_code", "no answer")
        statuses[status] += 1
        if isinstance(status, int) and status >= 500:
            request = exchange["request"]
            body = base64.b64decode((request.get("body") or {}).get("$base64", "")).decode(errors="replace")
            server_errors.append(f"{request['method']} {request['uri']} {body[:300]} -> {status}")
    for checks in recorder.get("checks", {}).values():
        failed.update(c["name"] for c in checks if c.get("status") != "success")
print(f"    operations: {suite.get('tests')} (failures {suite.get('failures')}, errors "
      f"{suite.get('errors')}); requests: {sum(statuses.values())}")
print("    answers by status: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(), key=str)))
print("    failed checks: " + (", ".join(f"{k} x{v}" for k, v in failed.items()) or "none"))
for line in server_errors[:20]:
    print("    5xx: " + line)
PY
}

run_schemathesis admin
run_schemathesis account

echo
echo "api-fuzz summary (schemathesis; checks: $checks; at most $max_examples examples per" \
    "operation and ${max_time}s per run; /v1/events excluded):"
for label in admin account; do
    echo "  $label token: schemathesis exit ${verdict[$label]}"
    summarize "$label"
done
echo "  the coordinator is still running and answering /healthz (pid $coordinator_pid)"
echo "  reports: $reports/{admin,account}"
if ((verdict[admin] != 0 || verdict[account] != 0)); then
    exit 1
fi
