#!/usr/bin/env bash
# The library as its clients meet it, each in a new package that depends on this checkout
# by path:
#   1. the README's examples pasted together into one main.swift, depending with
#      `traits: []`: resolves only what the library needs (swift-system), builds, runs;
#   2. irqsim and irqbench built from their sources as an outside client would build them:
#      only the library's public API is in reach (no `package` access across packages).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/irqemu-clients.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# 1. README examples.
mkdir -p "$work/readme/Sources/readme"
cat > "$work/readme/Package.swift" <<SWIFT
// swift-tools-version:6.2
import PackageDescription
let package = Package(
    name: "readme",
    dependencies: [.package(path: "$repo", traits: [])],
    targets: [.executableTarget(name: "readme", dependencies: [.product(name: "IRQEmu", package: "main")])])
SWIFT
# Every fenced swift block of the README marked `compose`, in order.
python3 - "$repo/README.md" > "$work/readme/Sources/readme/main.swift" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
blocks = re.findall(r"```swift compose\n(.*?)```", text, re.S)
assert blocks, "README has no `swift compose` blocks"
imports = sorted({l for b in blocks for l in b.splitlines() if l.startswith("import ")})
body = "\n".join(l for b in blocks for l in b.splitlines() if not l.startswith("import "))
print("\n".join(imports) + "\n\n" + body + '\nprint("README examples: OK")')
PY
sed -i "s|package: \"main\"|package: \"$(basename "$repo")\"|" "$work/readme/Package.swift"
(cd "$work/readme" && swift package resolve >/dev/null)
resolved="$(cd "$work/readme" && swift package show-dependencies --format flatlist 2>/dev/null | sort -u | tr '\n' ' ')"
echo "clients: a traits: [] client resolves: $resolved"
for unwanted in swift-argument-parser hdrhistogram-swift swift-docc-plugin; do
  if [[ "$resolved" == *"$unwanted"* ]]; then echo "clients: $unwanted resolved for a traits: [] client" >&2; exit 1; fi
done
(cd "$work/readme" && swift build > build.log 2>&1) || { cat "$work/readme/build.log"; exit 1; }
if grep -q "warning: " "$work/readme/build.log"; then grep "warning: " "$work/readme/build.log" >&2; exit 1; fi
(cd "$work/readme" && timeout 60 swift run -q readme)

# 2. The executables as outside clients.
mkdir -p "$work/tools/Sources"
for target in irqsim irqbench CBaselines; do cp -r "$repo/Sources/$target" "$work/tools/Sources/$target"; done
# Target names are unique across a package graph: the copies get names of their own.
sed -i 's/^import CBaselines$/import CBaselinesClient/' "$work/tools/Sources/irqbench/"*.swift
mv "$work/tools/Sources/CBaselines/include/CBaselines.h" "$work/tools/Sources/CBaselines/include/CBaselinesClient.h"
sed -i 's/#include "CBaselines.h"/#include "CBaselinesClient.h"/' "$work/tools/Sources/CBaselines/"*.c
cat > "$work/tools/Package.swift" <<SWIFT
// swift-tools-version:6.2
import PackageDescription
let package = Package(
    name: "tools",
    dependencies: [
        .package(path: "$repo"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", .upToNextMinor(from: "0.2.0")),
    ],
    targets: [
        .target(name: "CBaselinesClient", path: "Sources/CBaselines", cSettings: [.define("_GNU_SOURCE")],
                linkerSettings: [.linkedLibrary("urcu-memb"), .linkedLibrary("urcu-common")]),
        .executableTarget(name: "irqsimClient", dependencies: [
            .product(name: "IRQEmu", package: "$(basename "$repo")"),
            .product(name: "ArgumentParser", package: "swift-argument-parser")], path: "Sources/irqsim"),
        .executableTarget(name: "irqbenchClient", dependencies: [
            .product(name: "IRQEmu", package: "$(basename "$repo")"), "CBaselinesClient",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift")], path: "Sources/irqbench"),
    ])
SWIFT
(cd "$work/tools" && swift build > build.log 2>&1) || { cat "$work/tools/build.log"; exit 1; }
if grep -q "warning: " "$work/tools/build.log"; then grep "warning: " "$work/tools/build.log" >&2; exit 1; fi
echo "clients: irqsim and irqbench build against the public API alone"
