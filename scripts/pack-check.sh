#!/usr/bin/env bash
# Acceptance check for the npm package (slow: not part of `npm test`; run `npm run check:pack`).
#   1. clone this repository's HEAD into a temporary folder (a clean clone: no build/, dist/ or prebuilds/),
#      `npm ci --ignore-scripts`, then `npm pack`, whose prepack compiles the addon with cmake-js and has
#      prebuildify (through scripts/node-gyp-shim.js) write the prebuilds;
#   2. install the tarball into an empty folder with a PATH holding only node, npm and sh (no compiler, no cmake),
#      the install script's output shown (node-gyp-build-test must accept a prebuild: nothing is compiled);
#   3. from there: `hscr --version`, `hscr doctor` (which file and why), a tiny model, phantom data,
#      `hscr logprobs` (a forward pass), the package root's API from a script, and the README's API example
#      type-checked with `tsc --strict` against the installed package (root import only) and run.
# HSCR_PACK_TARBALL=<file> skips step 1 and checks that tarball. Prints each step's wall time.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/hscr-pack-XXXXXX")
# HSCR_PACK_KEEP=1 keeps the work folder (clone, tarball, consumer app) for inspection.
if [ "${HSCR_PACK_KEEP:-}" = 1 ]; then echo "pack-check: work folder $work (kept)" >&2; else trap 'rm -rf "$work"' EXIT; fi
step() { echo "pack-check: $*" >&2; }
timed() { local t0=$SECONDS; "$@"; step "  ($((SECONDS - t0)) s)"; }

if [ -n "${HSCR_PACK_TARBALL:-}" ]; then
  tarball=$(readlink -f "$HSCR_PACK_TARBALL")
else
  step "clean clone of $(git -C "$repo" rev-parse --short HEAD) -> $work/clone"
  git clone --quiet --no-hardlinks "$repo" "$work/clone"
  cd "$work/clone"
  step "npm ci --ignore-scripts"
  timed npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null
  step "npm pack (prepack: tsc + native build + prebuild)"
  timed npm pack --pack-destination "$work" --loglevel=error >"$work/pack.out"
  tarball="$work/$(tail -1 "$work/pack.out")"
fi
listing="$work/tarball.list"
tar -tzvf "$tarball" >"$listing"
step "tarball $(basename "$tarball"): $(stat -c %s "$tarball") bytes ($(du -h "$tarball" | cut -f1)), $(wc -l <"$listing") files"
step "prebuilds in the tarball (bytes, path):"
grep -E ' package/prebuilds/.*\.node$' "$listing" | awk '{print "  " $3 " " $6}' >&2
# (grep on files, not `tar | grep -q`: with pipefail, grep -q's early exit fails tar with SIGPIPE.)
grep -qE ' package/prebuilds/torch-[0-9]+\.[0-9]+-(cpu|cuda)/prebuilds/linux-[^/]+/hscr\.glibc\.node$' "$listing" ||
  { step "FAIL: no prebuilt addon variant in the tarball"; exit 1; }
grep -qE ' package/prebuilds/loader/prebuilds/linux-[^/]+/hscr_preload\.glibc\.node$' "$listing" ||
  { step "FAIL: no prebuilt preloader in the tarball"; exit 1; }
if grep -qE '\.map$| package/dist/bench/' "$listing"; then step "FAIL: source maps or benches shipped"; exit 1; fi

# A PATH with node, npm and sh only.
bin="$work/bin"
mkdir -p "$bin"
ln -s "$(command -v node)" "$bin/node"
ln -s "$(command -v npm)" "$bin/npm"
ln -s /bin/sh "$bin/sh"
for tool in cc gcc g++ c++ cmake make; do
  if PATH="$bin" command -v "$tool" >/dev/null 2>&1; then step "FAIL: $tool is on the restricted PATH"; exit 1; fi
done
app="$work/app"
mkdir -p "$app"
cd "$app"
echo '{"name":"hscr-consumer","version":"1.0.0","private":true}' >package.json
step "npm install the tarball with PATH=$bin (no compiler)"
t0=$SECONDS
env PATH="$bin" npm install --no-audit --no-fund --loglevel=error --foreground-scripts "$tarball" >"$app/install.log" 2>&1 ||
  { cat "$app/install.log" >&2; step "FAIL: npm install"; exit 1; }
step "  ($((SECONDS - t0)) s)"
grep -E '^hscr install:|^> ' "$app/install.log" >&2 || true
grep -q '^hscr install: using prebuilt ' "$app/install.log" || { cat "$app/install.log" >&2; step "FAIL: the install step did not accept a prebuild"; exit 1; }
if [ -e "$app/node_modules/hscr/build" ]; then step "FAIL: the install step built something (node_modules/hscr/build exists)"; exit 1; fi
hscr() { env PATH="$bin" node "$app/node_modules/hscr/bin/hscr.js" "$@"; }
step "hscr --version: $(hscr --version)"
hscr doctor --gemm-size 128 >&2
step "tiny model, phantom data, forward pass (hscr logprobs)"
t0=$SECONDS
hscr init --preset tiny --out "$app/model" --seed 1 >&2
hscr phantom --out "$app/data" --train 2 --test 4 --seed 3 --quiet 2>"$app/phantom.err" >&2
# libtorch preloaded into the global scope once clashed with sharp's GLib: any such line is a failure.
if grep -q CRITICAL "$app/phantom.err"; then step "FAIL: $(grep -c CRITICAL "$app/phantom.err") GLib CRITICAL lines while writing PNGs"; exit 1; fi
hscr logprobs --model "$app/model" --data "$app/data/test.jsonl" --quiet >"$app/logprobs.jsonl"
step "  ($((SECONDS - t0)) s)"
env PATH="$bin" node -e '
const fs = require("fs");
const lines = fs.readFileSync(process.argv[1], "utf8").trim().split("\n").map((l) => JSON.parse(l));
const lp = lines.flatMap((l) => l.logprobs);
if (lines.length !== 4 || !lp.length || !lp.every((x) => Number.isFinite(x) && x <= 0)) { console.error("FAIL: bad log-probs", lines); process.exit(1); }
console.error(`pack-check: ${lines.length} records, ${lp.length} answer tokens, mean log-prob ${(lp.reduce((a, b) => a + b, 0) / lp.length).toFixed(3)}`);
' "$app/logprobs.jsonl"
env PATH="$bin" node -e '
const hscr = require("hscr");
const where = hscr.addonLocation();
hscr.matmul(hscr.tensor(new Float32Array([1, 2, 3, 4]), [2, 2]), hscr.tensor(new Float32Array([1, 0, 0, 1]), [2, 2])).then((t) => {
  if (Array.from(t.toArray()).join() !== "1,2,3,4") { console.error("FAIL: matmul"); process.exit(1); }
  console.error(`pack-check: package root API ok; addon ${where.kind} ${where.variant || ""} (${where.reason})`);
  if (where.kind !== "prebuild") { console.error("FAIL: the installed package did not load its prebuild"); process.exit(1); }
});
'
step "README API example: tsc --strict against the installed package's root, then run"
node -e '
const text = require("fs").readFileSync(process.argv[1], "utf8");
const m = /```ts\n([\s\S]*?)```/.exec(text.slice(text.indexOf("\n## API")));
if (!m) { console.error("FAIL: no ```ts block in the README API section"); process.exit(1); }
if (/from \x27(?!hscr\x27|node:)[^\x27]*\x27/.test(m[1])) { console.error("FAIL: the example imports more than the package root"); process.exit(1); }
process.stdout.write(m[1]);
' "$app/node_modules/hscr/README.md" >"$app/consumer.ts"
cat >"$app/tsconfig.json" <<JSON
{ "compilerOptions": { "strict": true, "noUnusedLocals": true, "target": "ES2022", "module": "commonjs",
    "moduleResolution": "node", "esModuleInterop": true, "outDir": "out", "skipLibCheck": true,
    "typeRoots": ["$repo/node_modules/@types"], "types": ["node"] },
  "files": ["consumer.ts"] }
JSON
timed env PATH="$bin" node "$repo/node_modules/typescript/bin/tsc" -p "$app"
t0=$SECONDS
env PATH="$bin" node "$app/out/consumer.js" >"$app/consumer.out"
sed 's/^/  /' "$app/consumer.out" >&2
grep -qE 'preferences: [1-9][0-9]* written, [1-9][0-9]* re-ranked' "$app/consumer.out" && grep -q 'bad input is an HscrError: E_ARG' "$app/consumer.out" ||
  { step "FAIL: the README example's output"; exit 1; }
step "  ($((SECONDS - t0)) s)"
step "OK"
