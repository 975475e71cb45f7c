#!/usr/bin/env python3
"""What an idle Warren keeps resident, mapping by mapping (a lean process: figures in BENCHMARKS.md).

    scripts/rss-report.py BINARY [--check] [--wait SECONDS] [--env NAME=VALUE ...] [--keep]

Starts BINARY as an idle Warren against the broker named by WARREN_MANAGEMENT_URL and
BROKER_AMQP_PORT (`set -a; . DIR/broker.env; set +a` after `scripts/broker.sh start DIR`; the
management user is guest/guest unless WARREN_MANAGEMENT_USER/PASSWORD say otherwise), waits
(5 s by default), sends one GET /healthz, then prints VmRSS, RssAnon and RssFile from
/proc/PID/status and the resident pages from /proc/PID/smaps: per file and kind of mapping
(code, read-only, writable), clean or dirty; by group (the executable, the Swift runtime's shared
libraries, libcurl with OpenSSL, libcurl's other dependencies, libc and friends, anonymous);
and, for the executable, per section and per module (from /proc/PID/pagemap and its symbols), so
a change of link or build options can be read off page by page. --check then drives /healthz,
/readyz, /metrics, /v1/blueprints and a create, GET, list and delete with a token, to show that
the variant still works. --keep leaves the process running. The last line is one JSON object.
"""
import argparse
import hashlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(port, method, path, token=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=payload, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def wait_listening(port, proc, deadline_s=30):
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"warren exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("warren did not listen")


def status_kib(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0])
    return out


def smaps(pid):
    """One dict per mapping: name, perms, offset and the kB fields of smaps."""
    maps = []
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                lo, hi = (int(x, 16) for x in parts[0].split("-"))
                maps.append({"name": parts[5] if len(parts) > 5 else "[anon]", "perms": parts[1],
                             "offset": int(parts[2], 16), "start": lo, "size": (hi - lo) // 1024})
            elif parts[0].endswith(":") and len(parts) >= 2 and parts[1].isdigit():
                maps[-1][parts[0][:-1]] = int(parts[1])
    return maps


def sections(path):
    """(name, file offset, size, flags) of each allocated section, from readelf."""
    try:
        text = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    out = []
    for line in text.splitlines():
        line = line.replace("[ ", "[")
        parts = line.split()
        if len(parts) >= 8 and parts[0].startswith("[") and parts[0].endswith("]") and parts[0] != "[Nr]":
            name, offset, size, flags = parts[1], int(parts[4], 16), int(parts[5], 16), parts[7]
            if "A" in flags and parts[2] != "NOBITS":
                out.append((name, offset, size, flags))
    return out


def kind(m):
    """What a mapping of a file holds, by its permissions."""
    p = m["perms"]
    if "x" in p:
        return "text"
    if "w" in p:
        return "data (rw)"
    return "rodata (r)"


def group_of(name, exe):
    base = os.path.basename(name)
    if name == exe:
        return "executable"
    if not name.startswith("/"):
        return "anonymous, heap, stack"
    if base.startswith(("libswift", "libFoundation", "lib_Foundation", "libdispatch", "libBlocksRuntime")):
        return "Swift runtime (shared)"
    if base.startswith(("libc.so", "libm.so", "ld-linux", "libstdc++", "libgcc_s")):
        return "libc, libm, libstdc++, ld.so"
    if base.startswith(("libcurl", "libssl", "libcrypto")):
        return "libcurl, libssl, libcrypto"
    return "libcurl's other dependencies"


def groups(by_file, binary):
    exe = os.path.realpath(binary)
    out = {}
    for (name, _), a in by_file.items():
        g = out.setdefault(group_of(name, exe), [0, 0])
        g[0] += a["Rss"]
        g[1] += a["Private_Dirty"]
    return out


def report(pid, binary):
    st = status_kib(pid)
    maps = smaps(pid)
    by_file = {}
    for m in maps:
        if not m.get("Rss"):
            continue
        name = m["name"]
        key = (name, kind(m) if name.startswith("/") else "")
        agg = by_file.setdefault(key, {"Rss": 0, "Private_Dirty": 0, "Shared_Clean": 0, "Private_Clean": 0,
                                       "Anonymous": 0, "maps": 0})
        for k in ("Rss", "Private_Dirty", "Shared_Clean", "Private_Clean", "Anonymous"):
            agg[k] += m.get(k, 0)
        agg["maps"] += 1
    print(f"VmRSS {st['VmRSS']} kB   RssAnon {st['RssAnon']} kB   RssFile {st['RssFile']} kB   "
          f"RssShmem {st.get('RssShmem', 0)} kB")
    print(f"{'mapping':58} {'kind':11} {'Rss':>6} {'PrivDirty':>9} {'ShClean':>7} {'PrivClean':>9} {'Anon':>6}")
    for (name, k), a in sorted(by_file.items(), key=lambda kv: -kv[1]["Rss"]):
        short = name if len(name) <= 58 else "..." + name[-55:]
        print(f"{short:58} {k:11} {a['Rss']:6} {a['Private_Dirty']:9} {a['Shared_Clean']:7} "
              f"{a['Private_Clean']:9} {a['Anonymous']:6}")
    print("\nby group (kB Rss / Private_Dirty):")
    for g, (rss, dirty) in sorted(groups(by_file, binary).items(), key=lambda kv: -kv[1][0]):
        print(f"  {g:34} {rss:6} {dirty:6}")
    # The executable's own writable pages, section by section: which of them load-time
    # relocations dirtied (.data.rel.ro, .got) and which hold real data (.data, .bss).
    exe = os.path.realpath(binary)
    secs = sections(exe)
    own = [m for m in maps if m["name"] == exe]
    if secs and own:
        base = min(m["start"] - m["offset"] for m in own)
        print(f"\n{exe}: resident kB per section (smaps of the executable's mappings)")
        pages = resident_pages(pid, own)
        for name, offset, size, flags in secs:
            if size < 4096:
                continue
            lo, hi = base + offset, base + offset + size
            res = sum(1 for p in pages if lo <= p + 4095 and p < hi) * 4
            if res:
                print(f"  {name:28} size {size // 1024:7} kB  resident {res:6} kB  [{flags}]")
        modules = resident_by_module(exe, pages, base)
        if modules:
            print(f"\n{exe}: resident code and data kB by module (pages assigned to the module with most bytes there)")
            for mod, kib in sorted(modules.items(), key=lambda kv: -kv[1])[:20]:
                print(f"  {mod:34} {kib:6}")
    return st, by_file


def module_of(name):
    """The module a symbol belongs to, from its Swift mangling or its C/C++ name."""
    if name.startswith(("$ss", "$sS")):
        return "Swift stdlib"
    if name.startswith("$s"):
        digits = ""
        for ch in name[2:]:
            if not ch.isdigit():
                break
            digits += ch
        if digits:
            start = 2 + len(digits)
            return name[start:start + int(digits)]
        return "Swift (other)"
    if name.startswith("_Z"):
        return "C++ (Swift runtime, libstdc++ parts)"
    if "CCryptoBoringSSL" in name:
        return "BoringSSL (swift-crypto)"
    if name.startswith(("swift_", "_swift")):
        return "Swift runtime (C)"
    if "dispatch" in name:
        return "libdispatch"
    return "C (other)"


def resident_by_module(exe, pages, base):
    try:
        text = subprocess.run(["nm", "-S", "--defined-only", exe], capture_output=True, text=True,
                              check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return {}
    resident = set(pages)
    per_page = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) != 4:
            continue
        addr, size = base + int(parts[0], 16), int(parts[1], 16)
        if size == 0:
            continue
        mod = module_of(parts[3])
        page = addr & ~4095
        while page < addr + size:
            if page in resident:
                overlap = min(addr + size, page + 4096) - max(addr, page)
                counts = per_page.setdefault(page, {})
                counts[mod] = counts.get(mod, 0) + overlap
            page += 4096
    out = {}
    for page in resident:
        mod = max(per_page[page].items(), key=lambda kv: kv[1])[0] if page in per_page else "(no symbol)"
        out[mod] = out.get(mod, 0) + 4
    return out


def resident_pages(pid, mappings):
    """Addresses of resident pages in these mappings, from /proc/PID/pagemap (the present bit
    is readable without privileges; only page frame numbers are hidden)."""
    pages = []
    try:
        with open(f"/proc/{pid}/pagemap", "rb") as f:
            for m in mappings:
                n = m["size"] // 4
                f.seek(m["start"] // 4096 * 8)
                data = f.read(n * 8)
                for i in range(n):
                    entry = int.from_bytes(data[i * 8:i * 8 + 8], "little")
                    if entry >> 63:
                        pages.append(m["start"] + i * 4096)
    except OSError:
        pass
    return pages


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--check", action="store_true", help="also create and delete one environment")
    ap.add_argument("--wait", type=float, default=5.0)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for warren")
    ap.add_argument("--keep", action="store_true", help="leave warren running; print its pid and port")
    args = ap.parse_args()
    for var in ("WARREN_MANAGEMENT_URL", "BROKER_AMQP_PORT"):
        if var not in os.environ:
            raise SystemExit(f"{var} is not set: source the broker.env of scripts/broker.sh")

    workdir = tempfile.mkdtemp(prefix="warren-rss.")
    token = secrets.token_hex(16)
    tokens_file = os.path.join(workdir, "tokens")
    with open(tokens_file, "w") as f:
        f.write(f"rss {hashlib.sha256(token.encode()).hexdigest()}\n")
    port = free_port()
    env = dict(os.environ, WARREN_LISTEN=f"127.0.0.1:{port}", WARREN_TOKENS_FILE=tokens_file,
               WARREN_MANAGEMENT_USER=os.environ.get("WARREN_MANAGEMENT_USER", "guest"),
               WARREN_MANAGEMENT_PASSWORD=os.environ.get("WARREN_MANAGEMENT_PASSWORD", "guest"),
               WARREN_AMQP_PORT=os.environ["BROKER_AMQP_PORT"])
    for kv in args.env:
        k, _, v = kv.partition("=")
        env[k] = v
    # Pages of a file written moments ago are dirty in the page cache until written back, and
    # smaps would count them as Private_Dirty: write them back first.
    os.sync()
    log = open(os.path.join(workdir, "warren.log"), "w")
    proc = subprocess.Popen([args.binary], env=env, stdout=log, stderr=subprocess.STDOUT)
    result = {"binary": args.binary, "size_kib": os.path.getsize(args.binary) // 1024}
    try:
        wait_listening(port, proc)
        time.sleep(args.wait)
        status, _ = call(port, "GET", "/healthz")
        result["healthz"] = status
        time.sleep(0.5)
        st, by_file = report(proc.pid, args.binary)
        result.update(st)
        exe = os.path.realpath(args.binary)
        result["exe_kib"] = sum(a["Rss"] for (n, _), a in by_file.items() if n == exe)
        result["exe_dirty_kib"] = sum(a["Private_Dirty"] for (n, _), a in by_file.items() if n == exe)
        result["groups"] = {g: v[0] for g, v in groups(by_file, args.binary).items()}
        if args.check:
            name = "rss-" + secrets.token_hex(3)
            steps = [("GET", "/readyz", None, None, 200), ("GET", "/metrics", None, None, 200),
                     ("GET", "/v1/blueprints", token, None, 200),
                     ("POST", "/v1/environments", token, {"name": name}, 201),
                     ("GET", f"/v1/environments/{name}", token, None, 200),
                     ("GET", "/v1/environments", token, None, 200),
                     ("DELETE", f"/v1/environments/{name}", token, None, 204)]
            failed = []
            for method, path, tok, body, expected in steps:
                s, d = call(port, method, path, tok, body)
                if s != expected:
                    failed.append(f"{method} {path}: {s} {d[:200]!r}")
            result["check"] = "ok" if not failed else failed
            if failed:
                print("\n".join(failed), file=sys.stderr)
        if args.keep:
            print(f"kept: pid {proc.pid} port {port} token {token}")
            result["pid"], result["port"], result["token"] = proc.pid, port, token
    finally:
        if not args.keep:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
