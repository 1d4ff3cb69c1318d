#!/usr/bin/env python3
"""The public API audit `make docs` runs on the symbol graphs DocC was built from.

Fails (exit 1) on:
- a public declaration without a doc comment (protocol requirements' default
  implementations and synthesized members excepted);
- a public way around the free_irq contract: only dropping a registration, unbinding its
  device or shutting its controller down may free its IRQ, so no public symbol may reach
  the requested IRQ behind a registration (issue 14's hole: `Registration.inner`,
  `RegistrationInner.releaseResource()`).
"""
import glob, json, sys

root = sys.argv[1] if len(sys.argv) > 1 else ".build/x86_64-unknown-linux-gnu/extracted-symbols/*"
files = glob.glob(f"{root}/*/*.symbols.json")
if not files:
    sys.exit(f"api-audit: no symbol graphs under {root} (run make docs)")

undocumented, forbidden, total = [], [], 0
for path in sorted(files):
    graph = json.load(open(path))
    module = graph["module"]["name"]
    for symbol in graph["symbols"]:
        if symbol.get("accessLevel") not in ("public", "open"):
            continue
        name = ".".join(symbol["pathComponents"])
        kind = symbol["kind"]["identifier"]
        # Members the compiler synthesizes (Hashable, RawRepresentable, inherited defaults)
        # have no source location: they carry their protocol's documentation.
        if symbol.get("spi") or "location" not in symbol:
            continue
        total += 1
        if not symbol.get("docComment"):
            undocumented.append(f"{module}: {kind} {name}")
        lowered = name.lower()
        if lowered in ("registration.inner", "threadedregistration.inner") or name.startswith("RegistrationInner") \
                or (name.endswith("releaseResource()") and not name.startswith("ReleasableResource")):
            forbidden.append(f"{module}: {kind} {name}")

print(f"api-audit: {total} public declarations, {len(undocumented)} without a doc comment, "
      f"{len(forbidden)} that could free a registration's IRQ")
for line in undocumented:
    print("  undocumented:", line)
for line in forbidden:
    print("  contract hole:", line)
sys.exit(1 if undocumented or forbidden else 0)
