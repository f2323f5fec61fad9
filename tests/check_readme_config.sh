#!/usr/bin/env bash
# The README's configuration table must be exactly what `encore config
# --markdown` prints, so the documentation cannot drift from the code.
set -euo pipefail
encore="$1" readme="$2"
want=$("$encore" config --markdown)
have=$(sed -n '/<!-- config:begin -->/,/<!-- config:end -->/p' "$readme" | sed '1d;$d')
if [[ "$want" != "$have" ]]; then
  echo "README.md configuration table is out of date; regenerate it with:"
  echo "  encore config --markdown   (paste between the config markers)"
  diff <(echo "$have") <(echo "$want") || true
  exit 1
fi
echo "README configuration table matches encore config --markdown ($(echo "$want" | wc -l) lines)"
