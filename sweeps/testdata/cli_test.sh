#!/usr/bin/env bash
# End-to-end checks of `sd2ctl validate` and `sd2ctl expand`: exit codes, stdout/stderr split,
# exact messages. Usage: cli_test.sh PATH/TO/sd2ctl SWEEPS_SOURCE_DIR
set -u
SD2CTL=$1
DIR=$2
TMP=$(mktemp -d /tmp/sd2_sweeps_cli.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
unset SD2_DATA SD2_CLIP SD2_XCEPTION
# The weights the paper sweeps need (placeholder paths: validation does not open them).
WEIGHTS=(--var SD2_CLIP=/models/clip --var SD2_XCEPTION=/models/xception.safetensors)
fails=0
check() {  # check NAME EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAIL $1"; echo "  expected: $2"; echo "  actual:   $3"; fails=$((fails + 1))
  else
    echo "ok   $1"
  fi
}

"$SD2CTL" validate "$DIR/paper/table6_scaling.toml" "$DIR/ablation.toml" --var SD2_DATA=/data \
  "${WEIGHTS[@]}" >"$TMP/out" 2>"$TMP/err"
check "validate good: exit" 0 $?
check "validate good: stdout" "$DIR/paper/table6_scaling.toml: ok, 21 trials
$DIR/ablation.toml: ok, 25 trials" "$(cat "$TMP/out")"
check "validate good: stderr" "" "$(cat "$TMP/err")"

SD2_DATA=/env SD2_CLIP=/env/clip "$SD2CTL" validate "$DIR/paper/table5_ablation.toml" \
  >"$TMP/out" 2>"$TMP/err"
check "validate takes vars from the environment" "0 $DIR/paper/table5_ablation.toml: ok, 4 trials" \
  "$? $(cat "$TMP/out")"

"$SD2CTL" validate "$DIR/testdata/bad/seed_negative.toml" >"$TMP/out" 2>"$TMP/err"
check "validate bad: exit" 2 $?
check "validate bad: stdout" "" "$(cat "$TMP/out")"
check "validate bad: stderr" "$DIR/testdata/bad/seed_negative.toml:4:13: 'seeds[1]' must be >= 0, got -1" \
  "$(cat "$TMP/err")"

"$SD2CTL" validate "$DIR/paper/table4_genimage_probe.toml" "${WEIGHTS[@]}" >"$TMP/out" 2>"$TMP/err"
check "validate without SD2_DATA: exit" 2 $?
check "validate without SD2_DATA: message" \
  "$DIR/paper/table4_genimage_probe.toml:39:1: undefined variable \${SD2_DATA} (define it with --var SD2_DATA=VALUE or in the environment)" \
  "$(head -1 "$TMP/err")"

# Without the weight variables: exit 2, each named at the key that uses it.
"$SD2CTL" validate "$DIR/paper/table5_ablation.toml" --var SD2_DATA=/data >"$TMP/out" 2>"$TMP/err"
check "validate without SD2_CLIP" "2 $DIR/paper/table5_ablation.toml:22:5: undefined variable \${SD2_CLIP} (define it with --var SD2_CLIP=VALUE or in the environment)" \
  "$? $(cat "$TMP/out" "$TMP/err")"
"$SD2CTL" validate "$DIR/paper/table6_scaling.toml" --var SD2_DATA=/data --var SD2_CLIP=/m \
  >"$TMP/out" 2>"$TMP/err"
check "validate without SD2_XCEPTION: exit" 2 $?
check "validate without SD2_XCEPTION: messages" "$DIR/paper/table6_scaling.toml:26:10: undefined variable \${SD2_XCEPTION} (define it with --var SD2_XCEPTION=VALUE or in the environment)
$DIR/paper/table6_scaling.toml:27:7: undefined variable \${SD2_XCEPTION} (define it with --var SD2_XCEPTION=VALUE or in the environment)
$DIR/paper/table6_scaling.toml:28:6: undefined variable \${SD2_XCEPTION} (define it with --var SD2_XCEPTION=VALUE or in the environment)" \
  "$(cat "$TMP/err")"

# A method the paper starts from pretrained weights, without them and without
# allow_random_init: refused, naming the method and the fix.
"$SD2CTL" validate "$DIR/testdata/bad/pretrained_missing.toml" >"$TMP/out" 2>"$TMP/err"
check "validate refuses random init: exit" 2 $?
grep -q "^$DIR/testdata/bad/pretrained_missing.toml:2:19: method 'clip' starts from pretrained weights in the paper, but hparams.pretrained is empty or unset: set hparams.pretrained to .*, or set allow_random_init = true" "$TMP/err"
check "validate refuses random init: message" 0 $?

"$SD2CTL" validate "$DIR/testdata/bad/no_such_file.toml" >"$TMP/out" 2>"$TMP/err"
check "validate missing file: exit" 2 $?

"$SD2CTL" validate --var oops "$DIR/ablation.toml" >"$TMP/out" 2>"$TMP/err"
check "validate bad --var" "2 --var oops: expected NAME=VALUE" "$? $(cat "$TMP/err")"

"$SD2CTL" validate >"$TMP/out" 2>"$TMP/err"
check "validate without FILE: exit" 2 $?

"$SD2CTL" validate --help >"$TMP/out" 2>"$TMP/err"
check "validate --help: exit" 0 $?
grep -q "Usage: sd2ctl validate" "$TMP/out"
check "validate --help: usage" 0 $?

"$SD2CTL" expand "$DIR/paper/table5_ablation.toml" --var SD2_DATA=/data --scale 3M=9000 \
  "${WEIGHTS[@]}" >"$TMP/out" 2>"$TMP/err"
check "expand table: exit" 0 $?
check "expand table: last line" "4 trials" "$(tail -1 "$TMP/out")"
check "expand table: scale mapped" "4" "$(grep -c ' 9K ' "$TMP/out")"

"$SD2CTL" expand "$DIR/paper/table4_genimage_probe.toml" --var SD2_DATA=/data --json \
  "${WEIGHTS[@]}" >"$TMP/out" 2>"$TMP/err"
check "expand --json: exit" 0 $?
check "expand --json: lines" 7 "$(wc -l <"$TMP/out" | tr -d ' ')"
check "expand --json: probes" 3 "$(grep -c '"method":"probe"' "$TMP/out")"
# univfd and the three encoders (sd2, clip_svd, clip) start from the CLIP folder.
check "expand --json: pretrained" 4 "$(grep -c '"pretrained":"/models/clip"' "$TMP/out")"

"$SD2CTL" expand "$DIR/ablation.toml" --scale 3G=1 --var SD2_DATA=/d >"$TMP/out" 2>"$TMP/err"
check "expand bad --scale: exit" 2 $?

[ "$fails" -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all checks passed"
