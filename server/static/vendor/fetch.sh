#!/usr/bin/env bash
# Rebuilds the vendored third-party web assets in server/static/vendor/ from the
# exact versions pinned in package.json / package-lock.json.
#
#   bash server/static/vendor/fetch.sh
#
# Needs node + npm and access to the npm registry. Rerunnable and idempotent:
# `npm ci` runs in a temporary copy (no node_modules is left in the repo), the
# output folders kern/, htmx/ and graphiql/ are replaced as a whole, and the
# builds are deterministic, so a rerun with an unchanged lock file gives
# byte-identical files (check with `git status` or `sha256sum -c SHA256SUMS`).
set -euo pipefail

VENDOR_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/amtsplatz-vendor.XXXXXX")"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT

for tool in node npm sha256sum; do
  command -v "$tool" >/dev/null || { echo "fetch.sh: '$tool' is required" >&2; exit 1; }
done

echo "==> npm ci in $WORK"
cp "$VENDOR_DIR/package.json" "$VENDOR_DIR/package-lock.json" "$WORK/"
cp -r "$VENDOR_DIR/src" "$WORK/src"
cd "$WORK"
# --ignore-scripts: nothing here needs install scripts (esbuild's native binary
# comes from its optional dependency @esbuild/<platform>).
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
NM="$WORK/node_modules"
ESBUILD="$NM/.bin/esbuild"
OUT="$WORK/out"
mkdir -p "$OUT/kern/fonts/fira-sans" "$OUT/kern/js" "$OUT/htmx" "$OUT/graphiql"

pkg_version() { node -p "require('$NM/$1/package.json').version"; }
# SPDX id from package.json (htmx.org declares the non-SPDX "BSD-0-Clause").
pkg_license() { node -p "const l = require('$NM/$1/package.json').license; l === 'BSD-0-Clause' ? '0BSD' : l"; }

# ---------------------------------------------------------------- KERN UX
echo "==> kern"
KERN="$NM/@kern-ux/native"
cp "$KERN/dist/kern.min.css" "$OUT/kern/kern.min.css"
cp "$KERN/dist/fonts/fira-sans.css" "$OUT/kern/fonts/fira-sans.css"
cp "$KERN/dist/js/kern-kopfzeile.js" "$OUT/kern/js/kern-kopfzeile.js"
cp "$KERN/LICENSE.md" "$OUT/kern/LICENSE"
# Copy exactly the font files the font CSS references (relative url()s).
grep -o 'url("[^"]*")' "$KERN/dist/fonts/fira-sans.css" | sed -e 's/^url("//' -e 's/")$//' |
  while read -r rel; do
    cp "$KERN/dist/fonts/$rel" "$OUT/kern/fonts/$rel"
  done
# kern.min.css must not reference any other file (only data: URIs).
if grep -o 'url([^)]*)' "$OUT/kern/kern.min.css" | grep -v 'url("\?data:' >/dev/null; then
  echo "fetch.sh: kern.min.css references files that are not vendored" >&2; exit 1
fi

# ---------------------------------------------------------------- htmx
echo "==> htmx"
cp "$NM/htmx.org/dist/htmx.min.js" "$OUT/htmx/htmx.min.js"
cp "$NM/htmx.org/LICENSE" "$OUT/htmx/LICENSE"

# ---------------------------------------------------------------- GraphiQL
echo "==> graphiql"
COMMON=(--bundle --format=iife --minify --target=es2020 --legal-comments=none
        --define:process.env.NODE_ENV='"production"' --log-level=warning)
# Main bundle: React, ReactDOM, GraphiQL 5 (+ monaco-editor, prettier), toolkit,
# graphql-ws. Monaco's own CSS imports are dropped here: graphiql/style.css
# already contains them (with its fonts as data: URIs).
"$ESBUILD" src/graphiql-bundle.js "${COMMON[@]}" --loader:.css=empty \
  --metafile="$WORK/meta-main.json" --outfile="$OUT/graphiql/graphiql.js"
# Monaco web workers, each a self-contained classic worker script.
"$ESBUILD" "$NM/monaco-editor/esm/vs/editor/editor.worker.js" "${COMMON[@]}" \
  --metafile="$WORK/meta-editor.json" --outfile="$OUT/graphiql/editor.worker.js"
"$ESBUILD" "$NM/monaco-editor/esm/vs/language/json/json.worker.js" "${COMMON[@]}" \
  --metafile="$WORK/meta-json.json" --outfile="$OUT/graphiql/json.worker.js"
"$ESBUILD" "$NM/monaco-graphql/esm/graphql.worker.js" "${COMMON[@]}" \
  --metafile="$WORK/meta-graphql.json" --outfile="$OUT/graphiql/graphql.worker.js"
# CSS: graphiql/style.css (GraphiQL + Monaco, fonts as data: URIs) plus the
# full-page layout rules of src/graphiql.css.
"$ESBUILD" src/graphiql.css --bundle --minify --legal-comments=none \
  --log-level=warning --metafile="$WORK/meta-css.json" --outfile="$OUT/graphiql/graphiql.css"
# Page init (reads data-* attributes of #graphiql, no inline script needed).
"$ESBUILD" src/init.js --minify --target=es2020 --log-level=warning --outfile="$OUT/graphiql/init.js"
node src/licenses.mjs "$NM" "$OUT/graphiql/LICENSES" \
  "$WORK"/meta-main.json "$WORK"/meta-editor.json "$WORK"/meta-json.json \
  "$WORK"/meta-graphql.json "$WORK"/meta-css.json

# ---------------------------------------------------------------- install
echo "==> replacing kern/ htmx/ graphiql/ in $VENDOR_DIR"
for d in kern htmx graphiql; do
  rm -rf "${VENDOR_DIR:?}/$d"
  cp -r "$OUT/$d" "$VENDOR_DIR/$d"
done

# ---------------------------------------------------------------- README.md
row() { # package, what, upstream
  printf '| `%s` | %s | %s | %s | %s |\n' "$1" "$(pkg_version "$1")" "$(pkg_license "$1")" "$2" "$3"
}
{
  cat <<'EOF'
# Vendored third-party web assets

Generated by `fetch.sh` from the exact versions pinned in `package.json` /
`package-lock.json`. Do not edit the generated files by hand; change the pins
and rerun:

```sh
bash server/static/vendor/fetch.sh
```

(needs `node`/`npm` and the npm registry; it runs `npm ci` in a temporary
folder, leaves no `node_modules` behind, replaces `kern/`, `htmx/`,
`graphiql/`, this README and `SHA256SUMS`. Verify with
`cd server/static/vendor && sha256sum -c SHA256SUMS`.)

## Packages

| package | version | licence (SPDX) | vendored as | upstream |
| --- | --- | --- | --- | --- |
EOF
  row "@kern-ux/native" "kern/kern.min.css, kern/fonts/ (Fira Sans), kern/js/kern-kopfzeile.js, kern/LICENSE" "https://gitlab.opencode.de/kern-ux/kern-ux-plain (https://www.kern-ux.de)"
  row "htmx.org" "htmx/htmx.min.js, htmx/LICENSE" "https://github.com/bigskysoftware/htmx (https://htmx.org)"
  row "graphiql" "graphiql/graphiql.js, graphiql/graphiql.css" "https://github.com/graphql/graphiql/tree/main/packages/graphiql"
  row "@graphiql/react" "bundled into graphiql/graphiql.js" "https://github.com/graphql/graphiql/tree/main/packages/graphiql-react"
  row "@graphiql/toolkit" "bundled into graphiql/graphiql.js" "https://github.com/graphql/graphiql/tree/main/packages/graphiql-toolkit"
  row "graphql-ws" "bundled into graphiql/graphiql.js" "https://github.com/enisdenjo/graphql-ws"
  row "graphql" "bundled into graphiql/graphiql.js and graphql.worker.js" "https://github.com/graphql/graphql-js"
  row "react" "bundled into graphiql/graphiql.js" "https://github.com/facebook/react"
  row "react-dom" "bundled into graphiql/graphiql.js" "https://github.com/facebook/react"
  row "monaco-editor" "bundled into graphiql/graphiql.js, editor.worker.js, json.worker.js" "https://github.com/microsoft/monaco-editor"
  row "monaco-graphql" "bundled into graphiql/graphiql.js, graphql.worker.js" "https://github.com/graphql/graphiql/tree/main/packages/monaco-graphql"
  row "esbuild" "build tool only (not shipped)" "https://github.com/evanw/esbuild"
  cat <<'EOF'

Licence texts: `kern/LICENSE`, `htmx/LICENSE`, and `graphiql/LICENSES/` (one
file per npm package whose code is in the GraphiQL bundles, index in
`graphiql/LICENSES/README.md`).

## Using them

KERN (link both; the font CSS loads `kern/fonts/fira-sans/*.woff2`):

```html
<link rel="stylesheet" href="/static/vendor/kern/kern.min.css">
<link rel="stylesheet" href="/static/vendor/kern/fonts/fira-sans.css">
<script src="/static/vendor/kern/js/kern-kopfzeile.js" defer></script> <!-- only for <kern-kopfzeile> -->
```

htmx: `<script src="/static/vendor/htmx/htmx.min.js" defer></script>`

GraphiQL (no inline script, no CDN; Monaco workers are loaded from the same folder):

```html
<link rel="stylesheet" href="/static/vendor/graphiql/graphiql.css">
<div id="graphiql" data-endpoint="/graphql" data-subscription-endpoint="/graphql/ws"></div>
<script src="/static/vendor/graphiql/graphiql.js" defer></script>
<script src="/static/vendor/graphiql/init.js" defer></script>
```

Content-Security-Policy the GraphiQL page needs:
`default-src 'self'; script-src 'self'; worker-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'`

Sources of the GraphiQL entry points: `src/graphiql-bundle.js`, `src/graphiql.css`, `src/init.js`;
`src/licenses.mjs` collects the licence texts.
EOF
} > "$VENDOR_DIR/README.md"

# ---------------------------------------------------------------- SHA256SUMS
cd "$VENDOR_DIR"
find kern htmx graphiql README.md -type f | LC_ALL=C sort | xargs -d '\n' sha256sum > SHA256SUMS
echo "==> done: $(wc -l < SHA256SUMS) files, $(du -shc kern htmx graphiql | tail -1 | cut -f1) total"
