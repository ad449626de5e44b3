#!/bin/bash
# results/testdata/latex_compiles.sh TEX: compiles the renderer's LaTeX (the golden tables.tex,
# byte-equal to what `sd2ctl report --format latex` writes for the fixture store) with pdflatex,
# loading exactly the packages its own header comment names ("Needs \usepackage{...}"), so the
# comment stays true. pdflatex comes from Debian's texlive (scripts/setup.sh).
set -euo pipefail
tex="$(realpath "$1")"
command -v pdflatex >/dev/null || { echo "latex test: no pdflatex (run scripts/setup.sh)" >&2; exit 1; }
pkgs="$(sed -n 's/.*Needs \\usepackage{\([^}]*\)}.*/\1/p' "$tex" | sort -u)"
[[ -n "$pkgs" && "$(wc -l <<<"$pkgs")" -eq 1 ]] || { echo "latex test: no single package list in $tex" >&2; exit 1; }
tmp="$(mktemp -d /tmp/sd2_latex.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT
printf '\\documentclass{article}\n\\usepackage{%s}\n\\begin{document}\n\\input{%s}\n\\end{document}\n' \
  "$pkgs" "$tex" >"$tmp/doc.tex"
if ! (cd "$tmp" && pdflatex -interaction=nonstopmode -halt-on-error doc.tex >log.txt 2>&1); then
  grep -A3 '^!' "$tmp/log.txt" >&2 || tail -20 "$tmp/log.txt" >&2
  echo "latex test: $tex does not compile with \\usepackage{$pkgs}" >&2
  exit 1
fi
echo "latex test: $tex compiles with \\usepackage{$pkgs} ($(grep -o '[0-9]* pages\?' "$tmp/log.txt" | head -1))"
