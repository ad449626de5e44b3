#!/usr/bin/env bash
# End-to-end checks of `sd2ctl data import-deepfakebench` (the DF40 table, --root, --rebase, bad
# input writes nothing) and `sd2ctl data verify` (bad rows one per line, the rest still checked).
# Usage: cli_test.sh PATH/TO/sd2ctl
set -u
SD2CTL=$1
TMP=$(mktemp -d /tmp/sd2_data_cli.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL $1"; echo "  expected: $2"; echo "  actual:   $3"; fails=$((fails + 1))
  else
    echo "ok   $1"
  fi
}
I="$SD2CTL data import-deepfakebench"

# A DF40 method's JSON written on another machine, and a FaceForensics++ one under the root.
# (Labels are read in sorted order: simswap_Fake before simswap_Real.)
mkdir -p "$TMP/json" "$TMP/data"
cat >"$TMP/json/simswap_cdf.json" <<JSON
{"simswap_cdf": {
  "simswap_Real": {"test": {"r0": {"label": "simswap_Real", "frames": ["C:\\\\Users\\\\me\\\\df40\\\\cdf\\\\r0.png"]}}},
  "simswap_Fake": {"test": {"f0": {"label": "simswap_Fake", "frames": ["C:\\\\Users\\\\me\\\\df40\\\\cdf\\\\f0.png"]}}}}}
JSON
cat >"$TMP/json/FaceForensics++.json" <<JSON
{"FaceForensics++": {"FF-real": {"train": {"000": {"label": "FF-real", "frames": ["$TMP/data/ff/0.png"]}}}}}
JSON

$I "$TMP/json" --root "$TMP/data" --out "$TMP/m.jsonl" >"$TMP/out" 2>"$TMP/err"
check "import: a foreign path is an error" 2 $?
check "import: ... naming file, entry and path" \
  "sd2ctl data import-deepfakebench: INVALID_ARGUMENT: $TMP/json/simswap_cdf.json: at simswap_cdf/simswap_Fake/test/f0: frame path C:/Users/me/df40/cdf/f0.png is outside --root $TMP/data (a JSON made on another machine? map its folders with --rebase OLD=NEW)" \
  "$(cat "$TMP/err")"
check "import: nothing written" "" "$(ls "$TMP" | grep m.jsonl)"

$I "$TMP/json" --root "$TMP/data" --out "$TMP/m.jsonl" --rebase 'C:\Users\me' >"$TMP/out" 2>"$TMP/err"
check "import: bad --rebase" "2 sd2ctl data import-deepfakebench: INVALID_ARGUMENT: --rebase \"C:\\Users\\me\": expected OLD=NEW with both folders non-empty, e.g. --rebase /home/me/datasets=/data" \
  "$? $(cat "$TMP/err")"
check "import: bad --rebase writes nothing" "" "$(ls "$TMP" | grep m.jsonl)"

$I "$TMP/json" --root "$TMP/data" --out "$TMP/m.jsonl" --methods "$TMP/none.toml" \
  --rebase 'C:\Users\me\df40=data/df40' >"$TMP/out" 2>"$TMP/err"
check "import: missing --methods" "2 sd2ctl data import-deepfakebench: NOT_FOUND: DF40 methods table not found: $TMP/none.toml" \
  "$? $(cat "$TMP/err")"

$I "$TMP/json" --root "$TMP/data" --out "$TMP/m.jsonl" \
  --rebase 'C:\Users\me\df40=df40' --rebase 'C:\Users\me\other=/x' >"$TMP/out" 2>"$TMP/err"
check "import: rebased" 0 $?
check "import: unplaced dataset names reported" \
  "sd2ctl data import-deepfakebench: $TMP/json/FaceForensics++.json: dataset \"FaceForensics++\" is not in the DF40 methods table" \
  "$(grep -o '^.*is not in the DF40 methods table' "$TMP/err")"
check "import: summary" "1 dataset names placed" "$(grep -o '1 dataset names placed' "$TMP/err")"
check "import: rows" \
  '{"path":"ff/0.png","dataset":"FF++","subset":"FF-real","split":"train","type":"REAL","video":"FaceForensics++/FF-real/000","face":"","env":""}
{"path":"df40/cdf/f0.png","id":"simswap_cdf/df40/cdf/f0.png","dataset":"DF40","subset":"simswap_cdf","split":"test","type":"FS","video":"simswap_cdf/simswap_Fake/f0","face":"","env":"","domain":"CDF","method":"SimSwap","method_type":"FS","known":true}
{"path":"df40/cdf/r0.png","id":"simswap_cdf/df40/cdf/r0.png","dataset":"DF40","subset":"simswap_cdf","split":"test","type":"REAL","video":"simswap_cdf/simswap_Real/r0","face":"","env":"","domain":"CDF","method":"SimSwap","method_type":"FS","known":true}' \
  "$(cat "$TMP/m.jsonl")"

# verify: bad rows one per line, the good rows still decoded.
"$SD2CTL" synth --out "$TMP/s" --images 1800 --size 16 --threads 2 >/dev/null 2>&1
head -3 "$TMP/s/manifest.jsonl" >"$TMP/s/v.jsonl"
{
  echo '{"path": "broken'
  echo '{"path":"/etc/hostname","dataset":"D","split":"test","type":"REAL"}'
  echo '{"path":"../x.jpg","dataset":"D","split":"test","type":"REAL"}'
  echo '{"path":"images/missing.jpg","dataset":"D","split":"test","type":"REAL"}'
  sed -n 4p "$TMP/s/manifest.jsonl"
} >>"$TMP/s/v.jsonl"
"$SD2CTL" data verify "$TMP/s/v.jsonl" --threads 2 >"$TMP/out" 2>"$TMP/err"
check "verify: exit" 1 $?
check "verify: bad rows, then unreadable files, then the count" \
  "$TMP/s/v.jsonl:4:17: invalid JSON
$TMP/s/v.jsonl:5:2: path \"/etc/hostname\" is absolute or leaves the root (set allow_outside_root to accept it)
$TMP/s/v.jsonl:6:2: path \"../x.jpg\" is absolute or leaves the root (set allow_outside_root to accept it)
images/missing.jpg
4 of 8 images readable, 1 unreadable, 3 bad rows" \
  "$(sed 's/\t.*//; s/invalid JSON: .*/invalid JSON/' "$TMP/out")"
head -3 "$TMP/s/manifest.jsonl" >"$TMP/s/ok.jsonl"
"$SD2CTL" data verify "$TMP/s/ok.jsonl" >"$TMP/out" 2>"$TMP/err"
check "verify: all good" "0 3 of 3 images readable, 0 unreadable, 0 bad rows" "$? $(cat "$TMP/out")"

[ $fails -eq 0 ] && echo "all passed" || echo "$fails failed"
exit $((fails > 0))
