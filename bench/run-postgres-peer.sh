#!/usr/bin/env bash
# The peer: a PostgreSQL 15 ledger doing gongdai's write-only work with the same
# guarantees, driven by pgbench at the same concurrency, next to gongdai-load-bench
# --mix write on the same machine (bench/README.md, "run-postgres-peer.sh").
#
# It creates a temporary cluster (initdb) in a scratch directory, starts postgres on
# 127.0.0.1 on a free port with its unix socket in that directory, synchronous_commit = on
# and fsync at its default (on), and records each event as gongdai does: one row in the
# append-only `entries` table (sequence, previous hash, hash, time, business date, actor,
# role, unique request id, event and postings as jsonb) and the two account balances it
# moves (`balances`, NUMERIC, never below zero except external accounts), in one
# transaction, through one PL/pgSQL function per call. 90% of the calls are repayments
# (a loan's principal to its funding account: the union fund or the partner bank), 10%
# fund contributions, over as many loans as the gongdai run has, like --mix write.
# Variants, each in the same cluster with the tables emptied and a checkpoint before it:
#   chained:  (a) the SHA-256 hash chain: each entry's hash = sha256(previous hash ||
#             entry bytes), the chain head serialised with SELECT ... FOR UPDATE;
#   unchained: (b) the same entries and balances, no chain (sequence from a sequence);
#   inserts:  (c) one INSERT of an entry per transaction, nothing else.
# Then it prints the medians of --runs rounds side by side with gongdai's write-only
# entries/s and p99 at the same concurrency, the ratios, and the issue's targets.
#
# The cluster and every file are removed at the end, also on failure or Ctrl-C.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: bench/run-postgres-peer.sh [options]
  --clients N          concurrent clients, and gongdai's outstanding calls (default 64)
  --seconds S          duration of each run (default 10)
  --runs N             rounds of (gongdai, chained, unchained, inserts); medians (default 1)
  --loans N            loans (default 3000, as gongdai-load-bench)
  --threads N          pgbench threads (default 2)
  --gongdai-bench PATH gongdai-load-bench to run (default build/release/bench/gongdai-load-bench)
  --gongdai-results F  take gongdai's figures from the "result mix=write" lines of F (the
                       output of gongdai-load-bench runs) instead of running it
  --no-gongdai         PostgreSQL only
  --smoke              2 s runs, 200 loans: checks that it works, measures nothing
Environment: PG_BIN (default /usr/lib/postgresql/15/bin), TMPDIR (scratch directory parent).
EOF
}

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
clients=64
seconds=10
runs=1
loans=3000
threads=2
gongdai_bench="$root/build/release/bench/gongdai-load-bench"
gongdai_results=""
run_gongdai=1
while [ $# -gt 0 ]; do
  case "$1" in
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --loans) loans="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --gongdai-bench) gongdai_bench="$2"; shift 2 ;;
    --gongdai-results) gongdai_results="$2"; shift 2 ;;
    --no-gongdai) run_gongdai=0; shift ;;
    --smoke) seconds=2; loans=200; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "run-postgres-peer: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

pg_bin="${PG_BIN:-/usr/lib/postgresql/15/bin}"
for tool in initdb pg_ctl postgres psql pgbench; do
  if [ ! -x "$pg_bin/$tool" ]; then
    echo "run-postgres-peer: SKIPPED: $pg_bin/$tool is not installed" \
         "(scripts/setup-debian.sh installs postgresql-15; or set PG_BIN)" >&2
    exit 77
  fi
done
if [ "$run_gongdai" = 1 ] && [ -z "$gongdai_results" ] && [ ! -x "$gongdai_bench" ]; then
  echo "run-postgres-peer: $gongdai_bench is missing: build it (cmake --build --preset" \
       "release --target gongdai-load-bench), or pass --gongdai-results or --no-gongdai" >&2
  exit 2
fi

# PostgreSQL refuses to run as root: the cluster then belongs to the "postgres" account.
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  if ! id postgres >/dev/null 2>&1; then
    echo "run-postgres-peer: running as root needs the postgres account (package postgresql-15)" >&2
    exit 2
  fi
  as_owner=(runuser -u postgres --)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/gongdai-pg-peer.XXXXXX")"
data="$work/data"
started=0
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ "$started" = 1 ]; then
    "${as_owner[@]}" "$pg_bin/pg_ctl" -D "$data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 0755 "$work"
mkdir -p "$work/logs" "$work/scripts"
[ ${#as_owner[@]} -gt 0 ] && chown postgres: "$work" "$work/logs"

# A port nothing listens on (bash's /dev/tcp connects only if something does).
port=""
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 40000))
  if ! (exec 3<>"/dev/tcp/127.0.0.1/$candidate") 2>/dev/null; then
    port="$candidate"
    break
  fi
done
[ -n "$port" ] || { echo "run-postgres-peer: no free port found" >&2; exit 1; }
# Clients come through the owner-only unix socket, without a password; TCP on loopback
# wants one, and the role has none, so nobody else gets in that way.
"${as_owner[@]}" "$pg_bin/initdb" -D "$data" -U bench --auth-local=trust \
  --auth-host=scram-sha-256 --encoding=UTF8 --no-locale --no-sync >"$work/initdb.log" 2>&1 || {
  cat "$work/initdb.log" >&2
  exit 1
}
cat >>"$data/postgresql.conf" <<EOF
# gongdai peer benchmark: loopback and a private socket; durability at its defaults,
# spelled out.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
unix_socket_permissions = 0700
max_connections = $((clients + 20))
synchronous_commit = on
fsync = on
EOF
started=1
"${as_owner[@]}" "$pg_bin/pg_ctl" -D "$data" -l "$work/logs/postgres.log" -w start >/dev/null || {
  cat "$work/logs/postgres.log" >&2
  exit 1
}
postmaster_pid="$(head -1 "$data/postmaster.pid")"

psql_cmd=("$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h "$work" -p "$port" -U bench -d postgres)
"${psql_cmd[@]}" <<EOF
CREATE TABLE chain_head (
  id int PRIMARY KEY CHECK (id = 1),
  sequence bigint NOT NULL,
  hash bytea NOT NULL
);
CREATE SEQUENCE entry_sequence;
-- One row per event, never changed: the journal.
CREATE TABLE entries (
  sequence bigint PRIMARY KEY,
  previous_hash bytea,
  hash bytea,
  recorded_at timestamptz NOT NULL,
  business_date date NOT NULL,
  actor text NOT NULL,
  role text NOT NULL,
  request_id text NOT NULL UNIQUE,
  event jsonb NOT NULL,
  postings jsonb NOT NULL
);
CREATE FUNCTION entries_append_only() RETURNS trigger LANGUAGE plpgsql AS \$\$
BEGIN
  RAISE EXCEPTION 'entries are append-only';
END \$\$;
CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON entries
  FOR EACH ROW EXECUTE FUNCTION entries_append_only();
-- The balances, updated in the entry's transaction. As in gongdai, only external
-- accounts may go below zero.
CREATE TABLE balances (
  account text PRIMARY KEY,
  balance numeric NOT NULL CHECK (balance >= 0 OR account LIKE 'external:%')
);

-- The postings of a transfer, as gongdai's journal lists them.
CREATE FUNCTION postings_of(p_from text, p_to text, p_amount numeric) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS \$\$
  SELECT jsonb_build_array(
    jsonb_build_object('account', p_to, 'side', 'DEBIT', 'amount', p_amount),
    jsonb_build_object('account', p_from, 'side', 'CREDIT', 'amount', p_amount))
\$\$;

-- Moves p_amount from p_from to p_to; both accounts must exist.
CREATE FUNCTION move_balance(p_from text, p_to text, p_amount numeric) RETURNS void
LANGUAGE plpgsql AS \$\$
BEGIN
  UPDATE balances SET balance = balance - p_amount WHERE account = p_from;
  IF NOT FOUND THEN RAISE EXCEPTION 'no account %', p_from; END IF;
  UPDATE balances SET balance = balance + p_amount WHERE account = p_to;
  IF NOT FOUND THEN RAISE EXCEPTION 'no account %', p_to; END IF;
END \$\$;

-- (a) The hash chain: the head is locked for the whole transaction, so entries are
-- numbered without gaps and each links to the one before it.
CREATE FUNCTION record_chained(p_request_id text, p_actor text, p_role text, p_event jsonb,
                               p_from text, p_to text, p_amount numeric) RETURNS bigint
LANGUAGE plpgsql AS \$\$
DECLARE
  head_sequence bigint;
  head_hash bytea;
  entry_hash bytea;
  now_at timestamptz := clock_timestamp();
  entry_postings jsonb := postings_of(p_from, p_to, p_amount);
BEGIN
  SELECT sequence, hash INTO head_sequence, head_hash FROM chain_head WHERE id = 1 FOR UPDATE;
  entry_hash := sha256(head_hash || convert_to(concat_ws('|', head_sequence + 1, now_at,
      '2020-06-30', p_actor, p_role, p_request_id, p_event::text, entry_postings::text), 'UTF8'));
  INSERT INTO entries VALUES (head_sequence + 1, head_hash, entry_hash, now_at, '2020-06-30',
                              p_actor, p_role, p_request_id, p_event, entry_postings);
  PERFORM move_balance(p_from, p_to, p_amount);
  UPDATE chain_head SET sequence = head_sequence + 1, hash = entry_hash WHERE id = 1;
  RETURN head_sequence + 1;
END \$\$;

-- (b) The same without the chain.
CREATE FUNCTION record_unchained(p_request_id text, p_actor text, p_role text, p_event jsonb,
                                 p_from text, p_to text, p_amount numeric) RETURNS bigint
LANGUAGE plpgsql AS \$\$
DECLARE
  entry_sequence bigint := nextval('entry_sequence');
BEGIN
  INSERT INTO entries VALUES (entry_sequence, NULL, NULL, clock_timestamp(), '2020-06-30',
                              p_actor, p_role, p_request_id, p_event,
                              postings_of(p_from, p_to, p_amount));
  PERFORM move_balance(p_from, p_to, p_amount);
  RETURN entry_sequence;
END \$\$;

-- (c) An entry alone.
CREATE FUNCTION record_insert_only(p_request_id text, p_actor text, p_role text, p_event jsonb,
                                   p_from text, p_to text, p_amount numeric) RETURNS bigint
LANGUAGE plpgsql AS \$\$
DECLARE
  entry_sequence bigint := nextval('entry_sequence');
BEGIN
  INSERT INTO entries VALUES (entry_sequence, NULL, NULL, clock_timestamp(), '2020-06-30',
                              p_actor, p_role, p_request_id, p_event,
                              postings_of(p_from, p_to, p_amount));
  RETURN entry_sequence;
END \$\$;

-- The book: the loans of the gongdai run (10,000-100,000 yuan each, half from the union
-- fund, half from the partner bank), the fund and its capital.
CREATE FUNCTION reset_book(p_loans int) RETURNS void LANGUAGE plpgsql AS \$\$
BEGIN
  TRUNCATE entries;
  PERFORM setval('entry_sequence', 1, false);
  DELETE FROM chain_head;
  INSERT INTO chain_head VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');
  DELETE FROM balances;
  INSERT INTO balances
    SELECT 'loan:l' || lpad(i::text, 6, '0') || ':principal', 10000 + 1000 * (i % 91)
    FROM generate_series(1, p_loans) AS i;
  INSERT INTO balances VALUES ('union:fund:cash', 1000000000), ('union:fund:capital', 1000000000000),
                              ('bank:psbc:principal_lent', 0);
END \$\$;
EOF

# The two kinds of call, 9:1 as in gongdai-load-bench --mix write, each one statement
# calling one function (one round trip). Request ids are random 63-bit numbers per client:
# unique (the column is UNIQUE) like gongdai's. The accounts and events are built in the
# functions: pgbench would take the colons of account names in its scripts for variables.
for variant in chained unchained insert_only; do
  "${psql_cmd[@]}" <<EOF
CREATE FUNCTION repayment_$variant(p_request_id text, p_loan int, p_fen bigint) RETURNS bigint
LANGUAGE sql AS \$\$
  SELECT record_$variant(p_request_id, 'dev-cashier', 'cashier',
    jsonb_build_object('repayment_recorded', jsonb_build_object(
      'loan_id', 'L' || lpad(p_loan::text, 6, '0'), 'amount_fen', p_fen,
      'channel', 'PAYMENT_CHANNEL_BANK_TRANSFER')),
    'loan:l' || lpad(p_loan::text, 6, '0') || ':principal',
    CASE WHEN p_loan % 2 = 0 THEN 'union:fund:cash' ELSE 'bank:psbc:principal_lent' END,
    p_fen / 100.0)
\$\$;
CREATE FUNCTION contribution_$variant(p_request_id text, p_fen bigint) RETURNS bigint
LANGUAGE sql AS \$\$
  SELECT record_$variant(p_request_id, 'dev-cashier', 'cashier',
    jsonb_build_object('fund_contributed', jsonb_build_object(
      'amount_fen', p_fen, 'source', '吉安市总工会', 'reference', '工会经费划拨')),
    'union:fund:capital', 'union:fund:cash', p_fen / 100.0)
\$\$;
EOF
  cat >"$work/scripts/repayment-$variant.sql" <<EOF
\\set loan random(1, $loans)
\\set fen random(1, 999)
\\set rid random(1, 9223372036854775806)
SELECT repayment_$variant('pg-' || :client_id || '-' || :rid, :loan, :fen);
EOF
  cat >"$work/scripts/contribution-$variant.sql" <<EOF
\\set fen random(100, 1000000)
\\set rid random(1, 9223372036854775806)
SELECT contribution_$variant('pg-' || :client_id || '-' || :rid, :fen);
EOF
done

# CPU seconds of postgres: the postmaster's own plus its reaped children's (each
# connection's backend is a child that exits when pgbench disconnects).
postgres_cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ sub(/.*\) /, ""); print ($12 + $13 + $14 + $15) / hz }' \
    "/proc/$postmaster_pid/stat"
}

# Nearest-rank percentiles (microseconds) of pgbench's per-transaction log (3rd column).
percentiles() {
  cat "$@" | awk '{ print $3 }' | sort -n | awk '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "0 0 0 0"; exit }
      split("0.50 0.90 0.99 0.999", f, " ")
      for (i = 1; i <= 4; i++) { r = int(f[i] * NR) + 1; if (r > NR) r = NR; printf "%s%d", (i > 1 ? " " : ""), v[r] }
      print ""
    }'
}

run_pg() {
  local variant="$1" round="$2"
  "${psql_cmd[@]}" -c "SELECT reset_book($loans)" -c "VACUUM ANALYZE" -c "CHECKPOINT" >/dev/null
  local prefix="$work/logs/$variant-$round"
  local before after output
  before="$(postgres_cpu_s)"
  output="$("$pg_bin/pgbench" -n -h "$work" -p "$port" -U bench -c "$clients" -j "$threads" \
    -T "$seconds" -M prepared -l --log-prefix="$prefix" \
    -f "$work/scripts/repayment-$variant.sql@9" -f "$work/scripts/contribution-$variant.sql@1" \
    postgres 2>&1)" || { echo "$output" >&2; echo "run-postgres-peer: pgbench failed" >&2; exit 1; }
  # The backends' CPU reaches the postmaster's account when they exit and are reaped:
  # wait for pgbench's connections to be gone.
  for _ in $(seq 1 100); do
    [ "$("${psql_cmd[@]}" -t -A -c "SELECT count(*) FROM pg_stat_activity
        WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")" = 0 ] && break
    sleep 0.1
  done
  sleep 0.2
  after="$(postgres_cpu_s)"
  if grep -q "aborted" <<<"$output"; then
    echo "$output" >&2
    echo "run-postgres-peer: pgbench clients aborted (see above)" >&2
    exit 1
  fi
  local tps latency_ms_avg failed entries
  tps="$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$output" | head -1)"
  latency_ms_avg="$(sed -n 's/^latency average = \([0-9.]*\) ms.*/\1/p' <<<"$output" | head -1)"
  failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' <<<"$output" | head -1)"
  entries="$("${psql_cmd[@]}" -t -A -c "SELECT count(*) FROM entries")"
  read -r p50 p90 p99 p999 < <(percentiles "$prefix".*)
  rm -f "$prefix".*
  echo "result pg variant=$variant round=$round clients=$clients seconds=$seconds tps=$tps" \
       "latency_ms_avg=$latency_ms_avg latency_us_p50=$p50 latency_us_p90=$p90" \
       "latency_us_p99=$p99 latency_us_p999=$p999 failed=${failed:-0} entries=$entries" \
       "postgres_cpu_s=$(awk -v a="$after" -v b="$before" 'BEGIN { printf "%.2f", a - b }')"
  if [ "${failed:-0}" != 0 ]; then
    echo "run-postgres-peer: $failed transactions failed" >&2
    exit 1
  fi
  if [ "$variant" = chained ]; then
    # The chain as written must verify: gapless sequence, each previous_hash the hash
    # before it, each hash recomputed from the stored row.
    local broken
    broken="$("${psql_cmd[@]}" -t -A <<'EOF'
SELECT count(*) FROM (
  SELECT e.sequence, e.hash, e.previous_hash,
         lag(e.hash) OVER (ORDER BY e.sequence) AS before,
         lag(e.sequence) OVER (ORDER BY e.sequence) AS before_sequence,
         sha256(e.previous_hash || convert_to(concat_ws('|', e.sequence, e.recorded_at,
           e.business_date, e.actor, e.role, e.request_id, e.event::text, e.postings::text),
           'UTF8')) AS recomputed
  FROM entries e) c
WHERE c.hash <> c.recomputed
   OR (c.before IS NOT NULL AND (c.previous_hash <> c.before OR c.sequence <> c.before_sequence + 1));
EOF
)"
    if [ "$broken" != 0 ]; then
      echo "run-postgres-peer: $broken entries break the hash chain" >&2
      exit 1
    fi
  fi
}

results="$work/results"
: >"$results"
echo "run-postgres-peer: PostgreSQL $("$pg_bin/postgres" --version | awk '{print $3}') in $data," \
     "port $port; $clients clients, $threads pgbench threads, $seconds s per run, $runs round(s)," \
     "$loans loans"
echo "  synchronous_commit = $("${psql_cmd[@]}" -t -A -c 'SHOW synchronous_commit')," \
     "fsync = $("${psql_cmd[@]}" -t -A -c 'SHOW fsync')," \
     "wal_sync_method = $("${psql_cmd[@]}" -t -A -c 'SHOW wal_sync_method')," \
     "full_page_writes = $("${psql_cmd[@]}" -t -A -c 'SHOW full_page_writes')"
for round in $(seq 1 "$runs"); do
  if [ "$run_gongdai" = 1 ] && [ -z "$gongdai_results" ]; then
    "$gongdai_bench" --mix write --outstanding "$clients" --seconds "$seconds" --loans "$loans" \
      --no-ceiling >"$work/gongdai-$round.log" 2>&1 || {
      cat "$work/gongdai-$round.log" >&2
      echo "run-postgres-peer: gongdai-load-bench failed" >&2
      exit 1
    }
    grep '^result mix=write' "$work/gongdai-$round.log" | tee -a "$results"
  fi
  for variant in chained unchained insert_only; do
    run_pg "$variant" "$round" | tee -a "$results"
  done
done
if [ "$run_gongdai" = 1 ] && [ -n "$gongdai_results" ]; then
  grep "^result mix=write outstanding=$clients " "$gongdai_results" >>"$results" || {
    echo "run-postgres-peer: no 'result mix=write outstanding=$clients' line in $gongdai_results" >&2
    exit 1
  }
fi

# The median of the values of `key` on the result lines matching `pattern`.
median() {
  local pattern="$1" key="$2"
  grep -E "$pattern" "$results" | tr ' ' '\n' | sed -n "s/^$key=//p" | sort -g | awk '
    { v[NR] = $1 }
    END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "nan" }'; }

echo
echo "Medians of $runs round(s), $clients concurrent clients / outstanding calls, $seconds s each:"
printf '%-44s %10s %10s %10s %10s %12s\n' "" "entries/s" "mean us" "p50 us" "p99 us" "gongdai / it"
g_rate=nan
g_p99=nan
if [ "$run_gongdai" = 1 ]; then
  g_rate="$(median '^result mix=write' writes_per_s)"
  g_p99="$(median '^result mix=write' write_latency_us_p99)"
  printf '%-44s %10.0f %10.0f %10.0f %10.0f %12s\n' "gongdai-server, --mix write (gRPC, durable)" \
    "$g_rate" "$(median '^result mix=write' write_latency_us_mean)" \
    "$(median '^result mix=write' write_latency_us_p50)" "$g_p99" ""
fi
declare -A label=(
  [chained]="PostgreSQL (a) hash chain + balances"
  [unchained]="PostgreSQL (b) entries + balances, no chain"
  [insert_only]="PostgreSQL (c) single inserts only"
)
declare -A pg_rate
for variant in chained unchained insert_only; do
  pattern="^result pg variant=$variant "
  pg_rate[$variant]="$(median "$pattern" tps)"
  printf '%-44s %10.0f %10.0f %10.0f %10.0f %11sx\n' "${label[$variant]}" "${pg_rate[$variant]}" \
    "$(awk -v ms="$(median "$pattern" latency_ms_avg)" 'BEGIN { print ms * 1000 }')" \
    "$(median "$pattern" latency_us_p50)" "$(median "$pattern" latency_us_p99)" \
    "$(ratio "$g_rate" "${pg_rate[$variant]}")"
done
if [ "$run_gongdai" = 1 ]; then
  verdict() { if awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; then echo met; else echo "NOT met"; fi; }
  echo
  echo "targets:"
  echo "  gongdai >= 10x PostgreSQL (a) hash-chained entries/s: $(ratio "$g_rate" "${pg_rate[chained]}")x," \
       "$(verdict "$(ratio "$g_rate" "${pg_rate[chained]}")" 10)"
  echo "  gongdai >= 2x PostgreSQL (b) without a chain: $(ratio "$g_rate" "${pg_rate[unchained]}")x," \
       "$(verdict "$(ratio "$g_rate" "${pg_rate[unchained]}")" 2)"
  echo "  gongdai write p99 < 10 ms at $clients outstanding: $g_p99 us," \
       "$(awk -v p="$g_p99" 'BEGIN { print (p < 10000) ? "met" : "NOT met" }')"
fi
