"""Builds klinefeed._core, a C extension over libklinefeed (see README.md for why).

Where the library comes from, first match wins:
  1. KLINEFEED_BUILD_DIR: a CMake build directory of this project holding libklinefeed.a
     (the headers from KLINEFEED_INCLUDE_DIR, else ../include next to this file);
  2. ../build/libklinefeed.a next to this file (the README's build: `cmake -B build`);
  3. an installed copy found by pkg-config: klinefeed-static (the archive), else klinefeed
     (the shared library, which must then stay installed).
The archive is linked into the extension, its symbols hidden, so the installed package does
not depend on the build tree or on an rpath into it.
"""
import os
import shlex
import subprocess

from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
DEPS = ["-luv", "-lssl", "-lcrypto", "-lcurl", "-lsqlite3", "-lpq", "-lnats", "-pthread", "-lm"]


def pkg_config(*args):
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return shlex.split(out.stdout)


def library():
    """(include_dirs, extra_objects, extra_link_args, depends)"""
    build = os.environ.get("KLINEFEED_BUILD_DIR")
    if not build and os.path.exists(os.path.join(HERE, "..", "build", "libklinefeed.a")):
        build = os.path.join(HERE, "..", "build")
    if build:
        archive = os.path.join(os.path.abspath(build), "libklinefeed.a")
        if not os.path.exists(archive):
            raise SystemExit(f"klinefeed: {archive} not found: build the library first "
                             "(cmake -S . -B build && cmake --build build)")
        inc = os.environ.get("KLINEFEED_INCLUDE_DIR", os.path.join(HERE, "..", "include"))
        header = os.path.join(inc, "klinefeed.h")
        return [os.path.abspath(inc)], [archive], ["-Wl,--exclude-libs,ALL"] + DEPS, [header,
                                                                                        archive]
    flags = pkg_config("--cflags", "klinefeed-static")
    libs = pkg_config("--libs", "klinefeed-static")
    if flags is None or libs is None:
        flags = pkg_config("--cflags", "klinefeed")
        libs = pkg_config("--libs", "klinefeed")
    if flags is None or libs is None:
        raise SystemExit("klinefeed: libklinefeed not found: set KLINEFEED_BUILD_DIR to a build "
                         "directory, build ../build, or install the library (pkg-config klinefeed)")
    incs = [f[2:] for f in flags if f.startswith("-I")]
    return incs, [], ["-Wl,--exclude-libs,ALL"] + libs, []


include_dirs, objects, link_args, depends = library()

setup(
    name="klinefeed",
    version="0.2.0",
    description="Binance USDT-M Futures klines for asyncio, on libklinefeed",
    packages=["klinefeed"],
    package_data={"klinefeed": ["py.typed"]},
    python_requires=">=3.9",
    ext_modules=[
        Extension(
            "klinefeed._core",
            sources=["klinefeed/_core.c"],
            include_dirs=include_dirs,
            extra_objects=objects,
            extra_link_args=link_args,
            extra_compile_args=["-std=c17", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE"],
            depends=depends,
        )
    ],
)
