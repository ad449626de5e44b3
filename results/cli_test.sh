#!/bin/bash
# End-to-end checks of `sd2ctl metrics` and `sd2ctl report`: exit codes, exact error messages,
# and values on a tiny store built here from storage/schema.sql with the sqlite3 shell.
#   results/cli_test.sh PATH/TO/sd2ctl SOURCE_DIR
set -u
sd2ctl="$1"
src="$2"
tmp="$(mktemp -d /tmp/sd2-results-cli.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# expect RC EXPECTED_STDERR ARGS...: runs sd2ctl, checks the exit code and the exact stderr.
expect() {
  local rc="$1" err="$2"; shift 2
  "$sd2ctl" "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  [[ $got == "$rc" ]] || fail "sd2ctl $*: exit $got, want $rc (stderr: $(cat "$tmp/err"))"
  [[ -z "$err" || "$(cat "$tmp/err")" == "$err" ]] || fail "sd2ctl $*: stderr '$(cat "$tmp/err")', want '$err'"
}

# --- metrics ------------------------------------------------------------------------------
printf 'label,score,video\n0,0.1,a\n0,0.3,a\n1,0.35,b\n1,0.8,b\n0,0.4,c\n1,0.9,d\n' >"$tmp/m.csv"
expect 0 "" metrics --input "$tmp/m.csv"
# scikit-learn 1.2: roc_auc_score = 0.888888888888889, average_precision_score = 0.9166666666666665
awk -v out="$(cat "$tmp/out")" 'BEGIN {
  n = split(out, kv, /[{},:]/); for (i = 1; i < n; i++) v[kv[i]] = kv[i + 1]
  ok = v["\"n\""] == 6 && (v["\"auc\""] - 0.888888888888889)^2 < 1e-24 &&
       (v["\"ap\""] - 0.9166666666666665)^2 < 1e-24 && (v["\"acc\""] - 5/6)^2 < 1e-24 &&
       (v["\"eer\""] - 1/3)^2 < 1e-24 && v["\"video_auc\""] == 1
  exit ok ? 0 : 1 }' || fail "metrics output: $(cat "$tmp/out")"
printf 'label,score\n0,0.1\n2,0.5\n' >"$tmp/bad1.csv"
expect 2 "sd2ctl metrics: $tmp/bad1.csv:3: label '2' is not 0 (real) or 1 (fake)" metrics --input "$tmp/bad1.csv"
printf 'label,score\n0,0.1\n1,abc\n' >"$tmp/bad2.csv"
expect 2 "sd2ctl metrics: $tmp/bad2.csv:3: score 'abc' is not a number" metrics --input "$tmp/bad2.csv"
printf 'label,score\n0,0.1\n1,nan\n' >"$tmp/bad3.csv"
expect 2 "sd2ctl metrics: $tmp/bad3.csv:3: score 'nan' is not finite" metrics --input "$tmp/bad3.csv"
printf 'label,score\n0,0.1,x\n' >"$tmp/bad4.csv"
expect 2 "sd2ctl metrics: $tmp/bad4.csv:2: expected 2 fields, got 3" metrics --input "$tmp/bad4.csv"
printf 'lab,score\n' >"$tmp/bad5.csv"
expect 2 "sd2ctl metrics: $tmp/bad5.csv:1: expected the header 'label,score' or 'label,score,video', got 'lab,score'" metrics --input "$tmp/bad5.csv"
printf 'label,score\n1,0.1\n1,0.7\n' >"$tmp/one.csv"
expect 2 "sd2ctl metrics: $tmp/one.csv: AUC, EER and AP are undefined: only one class present (2 fake, 0 real samples)" metrics --input "$tmp/one.csv"
printf 'label,score,video\n0,0.1,a\n1,0.7,a\n' >"$tmp/vid.csv"
expect 2 "sd2ctl metrics: $tmp/vid.csv: video 'a' has frames labelled 0 (sample 0) and 1 (sample 1)" metrics --input "$tmp/vid.csv"
printf 'label,score\n' >"$tmp/empty.csv"
expect 2 "sd2ctl metrics: $tmp/empty.csv: no samples after the header" metrics --input "$tmp/empty.csv"
expect 2 "sd2ctl metrics: $tmp/none.csv: cannot open: No such file or directory" metrics --input "$tmp/none.csv"
expect 2 "" metrics
expect 0 "" metrics --help

# --- report -------------------------------------------------------------------------------
expect 2 "sd2ctl report: --db: no database at $tmp/none.db" report --db "$tmp/none.db"
expect 2 "sd2ctl report: --tables: '9' is not one of the paper's tables 2,3,4,5,6,7,8" report --tables 2,9
expect 2 "sd2ctl report: --format: unknown format 'pdf' (use md, latex, csv or html)" report --format pdf
expect 2 "sd2ctl report: --paper-data $tmp: no reported.toml there" report --paper-data "$tmp"
expect 0 "" report --help

sqlite3 "$tmp/s.db" <"$src/storage/schema.sql" || fail "cannot build the test store"
sqlite3 "$tmp/s.db" <<'SQL' || fail "cannot fill the test store"
PRAGMA user_version = 1;
INSERT INTO trials (id, trial_key, method, scale, seed, config_json, created_at, updated_at)
  VALUES (1, 'k1', 'sd2', 100000, 0,
          '{"ablation":{"clam":true,"ld_env":true,"ld_face":true},"method":"sd2","scale":100000,"seed":0}', 1, 1);
INSERT INTO attempts (id, trial_id, number, state, created_at) VALUES (1, 1, 1, 'succeeded', 1);
INSERT INTO scores (attempt_id, eval_set, sample_id, label, score) VALUES
  (1, 'UADFV', 'a', 0, 0.1), (1, 'UADFV', 'b', 0, 0.4), (1, 'UADFV', 'c', 1, 0.35),
  (1, 'UADFV', 'd', 1, 0.8);
SQL
expect 0 "" report --db "$tmp/s.db" --tables 3 --format csv
grep -qx '3,SD2,,UADFV,75.0000,96.4400,-21.4400,1,1' "$tmp/out" || fail "report csv: $(grep SD2 "$tmp/out" | head -2)"
expect 0 "" report --db "$tmp/s.db" --tables 6
grep -q '^| SD2 | \*\*75.00\*\*\* (82.90) |$' "$tmp/out" || fail "report md table 6: $(grep SD2 "$tmp/out")"
expect 0 "" report --db "$tmp/s.db" --format latex --out "$tmp/out-dir"
for f in table2.tex table3.tex table4.tex table5.tex table6.tex table7.tex table8.tex report.html scaling.svg; do
  [[ -s "$tmp/out-dir/$f" ]] || fail "report --out: $f missing"
done
grep -q '<svg' "$tmp/out-dir/report.html" || fail "report.html has no inline figure"

if [[ $failures -gt 0 ]]; then echo "$failures failure(s)"; exit 1; fi
echo "all sd2ctl report/metrics checks passed"
