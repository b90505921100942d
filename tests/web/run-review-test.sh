#!/usr/bin/env bash
# CTest driver of the review page's end-to-end test (tests/CMakeLists.txt):
# builds a small catalogue with one cluster with the real doppel binary, starts
# `doppel serve` on a free loopback port, runs review.test.mjs in headless
# Chromium, then checks the decision in the catalogue with sqlite3.
# Exit 77 (skipped) when node, npm or chromium is missing, unless CI=true.
set -euo pipefail
doppel=${1:?usage: run-review-test.sh PATH_TO_DOPPEL}
here=$(cd "$(dirname "$0")" && pwd)
chromium=${CHROMIUM:-/usr/bin/chromium}

missing=""
command -v node >/dev/null || missing+=" node"
command -v npm >/dev/null || missing+=" npm"
[[ -x $chromium ]] || missing+=" chromium($chromium)"
command -v sqlite3 >/dev/null || missing+=" sqlite3"
command -v vips >/dev/null || missing+=" vips"
command -v exiv2 >/dev/null || missing+=" exiv2"
if [[ -n $missing ]]; then
  if [[ ${CI:-} == true ]]; then
    echo "review page test: missing$missing under CI=true (scripts/install-deps installs them)" >&2
    exit 1
  fi
  echo "review page test skipped: missing$missing (install with scripts/install-deps)"
  exit 77
fi
if [[ ! -d $here/node_modules/playwright-core ]]; then
  (cd "$here" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --silent)
fi

work=$(mktemp -d)
server=""
cleanup() {
  [[ -n $server ]] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/apur" "$work/urb"
photo=""
for p in /usr/share/backgrounds/mate/nature/Dune.jpg /usr/share/backgrounds/rhythm.jpg \
         /usr/share/backgrounds/2004default.jpg; do
  [[ -f $p ]] && { photo=$p; break; }
done
if [[ -z $photo ]]; then
  vips black "$work/apur/base.v" 800 600 --bands 3
  vips gaussnoise "$work/noise.v" 800 600
  vips add "$work/apur/base.v" "$work/noise.v" "$work/apur/photo.jpg"
  rm -f "$work/apur/base.v"
else
  cp "$photo" "$work/apur/photo.jpg"
fi
vips resize "$work/apur/photo.jpg" "$work/urb/photo-small.jpg[Q=85]" 0.5
# The two copies disagree on the title: a metadata conflict to resolve.
exiv2 -M"set Exif.Image.ImageDescription Dune" -M"set Xmp.dc.title lang=x-default Dune" \
  "$work/apur/photo.jpg"
exiv2 -M"set Exif.Image.ImageDescription Dune du Pilat" \
  -M"set Xmp.dc.title lang=x-default Dune du Pilat" "$work/urb/photo-small.jpg"
db=$work/doppel.db
"$doppel" --db "$db" -q init
"$doppel" --db "$db" -q source add apur "$work/apur"
"$doppel" --db "$db" -q source add urb "$work/urb"
"$doppel" --db "$db" -q scan
"$doppel" --db "$db" -q match
"$doppel" --db "$db" -q plan --include-unconfirmed -o "$work/plan.json" >/dev/null
token=$("$doppel" --db "$db" -q key add apur --role reviewer --label "browser test")

"$doppel" --db "$db" serve --listen 127.0.0.1:0 2>"$work/serve.log" &
server=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$work/serve.log")
  [[ -n $port ]] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
  sleep 0.1
done
[[ -n $port ]] || { echo "doppel serve did not start:" >&2; cat "$work/serve.log" >&2; exit 1; }

CHROMIUM=$chromium node "$here/review.test.mjs" "http://127.0.0.1:$port" "$token"

decision=$(sqlite3 "$db" "SELECT decision FROM review_decisions ORDER BY id DESC LIMIT 1")
if [[ $decision != confirm ]]; then
  echo "the catalogue does not hold the confirmation (latest decision: '${decision}')" >&2
  exit 1
fi
echo "review page test: decision 'confirm' stored in the catalogue"
# The metadata decision: one event, by the key, and the conflict is closed.
agent=$(sqlite3 "$db" "SELECT agent FROM events WHERE event_type = 'metadata decision'")
if [[ $agent != "person key "*"(browser test)" ]]; then
  echo "expected one metadata decision by the browser test's key, got '${agent}'" >&2
  exit 1
fi
title=$("$doppel" --db "$db" metadata --format json |
  node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s)[0].fields.title.value))')
open=$("$doppel" --db "$db" metadata --conflicts --json)
if [[ $title != "Dune du Pilat" || $open == *'"title"'* ]]; then
  echo "the exported title is '${title}' and the open conflicts are: ${open}" >&2
  exit 1
fi
echo "review page test: title conflict resolved by '${agent}', exported as '${title}'"
