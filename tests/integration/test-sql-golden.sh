#!/usr/bin/env bash
# SQL golden tests (PostgreSQL regress style): every tests/sql/cases/*.sql
# and every example marked <!-- example: NAME --> in docs/sql.md runs with
# `velo run --format csv` from tests/sql/, and its standard output must
# equal tests/sql/expected/<case>.out (doc examples: doc-NAME.out) byte for
# byte. Standard error (log timestamps removed) must equal
# expected/<case>.err when that exists, and be empty otherwise; the exit
# code must equal expected/<case>.exit (default 0).
#
# VELO_GOLDEN_UPDATE=1 writes the expected files instead (review the diff!).
set -uo pipefail
: "${VELO_BIN:?run through ctest}"
SQL_DIR="${VELO_SOURCE_DIR:?}/tests/sql"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/velo-golden-XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
PASS=0
FAIL=0
FAILED=()

run_case() { # name sqlfile
  local name="$1" sql="$2"
  local out="$WORK/$name.out" err="$WORK/$name.err" code=0
  (cd "$SQL_DIR" && "$VELO_BIN" run --format csv --no-progress "$sql" \
      >"$out" 2>"$err.raw") || code=$?
  # Log lines start with a timestamp; drop it so stderr is comparable.
  sed -E 's/^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z //' "$err.raw" >"$err"
  local exp="$SQL_DIR/expected/$name"
  if [[ "${VELO_GOLDEN_UPDATE:-0}" == 1 ]]; then
    cp "$out" "$exp.out"
    rm -f "$exp.exit" "$exp.err"
    if [[ $code -ne 0 ]]; then echo "$code" >"$exp.exit"; fi
    if [[ -s "$err" ]]; then cp "$err" "$exp.err"; fi
    echo "updated $name"
    return
  fi
  local want_code=0
  [[ -f "$exp.exit" ]] && want_code="$(cat "$exp.exit")"
  local ok=1
  if [[ ! -f "$exp.out" ]]; then
    echo "FAIL $name: no expected/$name.out"; ok=0
  elif ! diff -u "$exp.out" "$out" >"$WORK/$name.diff"; then
    echo "FAIL $name: output differs"; head -40 "$WORK/$name.diff"; ok=0
  fi
  if [[ "$code" != "$want_code" ]]; then
    echo "FAIL $name: exit $code, expected $want_code"; head -20 "$err"; ok=0
  fi
  if [[ -f "$exp.err" ]]; then
    if ! diff -u "$exp.err" "$err" >"$WORK/$name.errdiff"; then
      echo "FAIL $name: stderr differs"; head -20 "$WORK/$name.errdiff"; ok=0
    fi
  elif [[ -s "$err" ]]; then
    echo "FAIL $name: unexpected stderr:"; head -10 "$err"; ok=0
  fi
  if [[ $ok == 1 ]]; then PASS=$((PASS + 1)); else FAIL=$((FAIL + 1)); FAILED+=("$name"); fi
}

shopt -s nullglob
for f in "$SQL_DIR"/cases/*.sql; do
  run_case "$(basename "$f" .sql)" "$f"
done

# Examples in the SQL reference.
DOC="${VELO_SOURCE_DIR}/docs/sql.md"
if [[ -f "$DOC" ]]; then
  mkdir -p "$WORK/doc"
  awk -v dir="$WORK/doc" '
    /<!-- example: [a-z0-9_]+ -->/ { match($0, /example: [a-z0-9_]+/);
      name = substr($0, RSTART + 9, RLENGTH - 9); want = 1; next }
    want && /^```sql/ { inblock = 1; want = 0; file = dir "/" name ".sql";
      printf "" > file; next }
    inblock && /^```/ { inblock = 0; close(file); next }
    inblock { print >> file }
  ' "$DOC"
  for f in "$WORK"/doc/*.sql; do
    run_case "doc-$(basename "$f" .sql)" "$f"
  done
fi

echo
if [[ $FAIL -gt 0 ]]; then echo "failed: ${FAILED[*]}"; fi
echo "$PASS passed, $FAIL failed"
[[ $FAIL -eq 0 && $PASS -gt 0 ]]
