"""scripts/release.sh (issue 11): the binary to ship is small, its debug info kept beside it.

Splits the suite's own release binary (no second build): the stripped binary still runs,
keeps its symbol table (perf and gdb name functions) and points at dockgate.debug through
.gnu_debuglink; the debug file holds the line tables.
"""
import shutil

import pytest

from dgtest.gateway import REPO_ROOT
from dgtest.proc import run


def test_release_script_splits_debug_info(dockgate_binary, tmp_path):
    if shutil.which("objcopy") is None:
        pytest.skip("objcopy (binutils) is not installed")
    dist = tmp_path / "dist"
    run(["bash", REPO_ROOT / "scripts" / "release.sh", dockgate_binary],
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DIST_DIR": str(dist)}, timeout=300)
    shipped, debug = dist / "dockgate", dist / "dockgate.debug"
    full = dockgate_binary.stat().st_size
    size = shipped.stat().st_size
    print(f"release binary {full} bytes; shipped {size} bytes; debug file "
          f"{debug.stat().st_size} bytes")
    assert size < 40 << 20 and size < full / 2, (size, full)
    assert run([shipped, "--version"]).stdout.startswith("dockgate ")
    sections = run(["readelf", "-S", "-W", shipped]).stdout
    assert ".gnu_debuglink" in sections and ".debug_line" not in sections, sections
    assert ".symtab" in sections, "the symbol table stays for profiling"
    assert ".debug_line" in run(["readelf", "-S", "-W", debug]).stdout
    link = run(["readelf", "--string-dump=.gnu_debuglink", shipped]).stdout
    assert "dockgate.debug" in link, link
