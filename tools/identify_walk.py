#!/usr/bin/env python3
"""The walk of one identify through the package: which gmi files the identify code calls
into, in order (issue 24's "identify walk").

    python tools/identify_walk.py HOME IMAGE [--json]

Records every call made FROM the identify driver's own frames and comprehensions
(Hub.identify, and the pipeline function it hands the query to, when there is one) INTO a
function of src/gmi, and
prints the callees' files in order: stops (calls), distinct files, and returns (a call into a
file the walk had already left). Deeper calls (inside an encoder, inside the ranking core)
are not stops: they are the component's own business.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DRIVERS = {("hub.py", "identify"), ("pipeline.py", "identify")}
COMPREHENSIONS = {"<listcomp>", "<genexpr>", "<setcomp>", "<dictcomp>"}  # the driver's own


def walk(home: str, image: str) -> list[str]:
    import gmi
    from gmi.hub import Hub

    root = Path(gmi.__file__).resolve().parent
    hub = Hub(home)
    hub.identify([image])  # warm: imports and the index snapshot are not part of the walk
    stops: list[str] = []

    def profile(frame, event, arg):
        if event != "call":
            return
        caller = frame.f_back
        while caller is not None and caller.f_code.co_name in COMPREHENSIONS:
            caller = caller.f_back  # a comprehension inside a driver is the driver
        if caller is None:
            return
        caller_file = Path(caller.f_code.co_filename)
        if (caller_file.name, caller.f_code.co_name) not in DRIVERS:
            return
        callee = Path(frame.f_code.co_filename).resolve()
        if root in callee.parents and frame.f_code.co_name not in COMPREHENSIONS:
            stops.append(f"{callee.relative_to(root).as_posix()}:{frame.f_code.co_name}")

    sys.setprofile(profile)
    try:
        hub.identify([image])
    finally:
        sys.setprofile(None)
    return stops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home")
    parser.add_argument("image")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    stops = walk(args.home, args.image)
    files = [s.split(":")[0] for s in stops]
    returns = sum(1 for i, f in enumerate(files) if i and f != files[i - 1] and f in files[: i - 1])
    summary = {"stops": len(stops), "files": len(set(files)), "returns": returns, "walk": stops}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print("\n".join(stops))
        print(f"{len(stops)} stops in {len(set(files))} files, {returns} returns to a file left")
    return 0


if __name__ == "__main__":
    sys.exit(main())
