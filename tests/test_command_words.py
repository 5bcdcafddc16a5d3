"""The commands moodtag's messages suggest (`moodtag prune --forget-disk MOUNT LINK`) name each path so that,
pasted into a shell, it is that path: a name whose bytes are not UTF-8, or that holds a control character,
was shown as \\xNN inside single quotes, which a shell takes literally (another name: the command forgot
nothing and warned of a typo). Checked with the real bash, and through the real CLI in a private mount
namespace (tests.test_removable._in_namespace)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from tagger.records import command_word
from tests.test_removable import _disk, _in_namespace

NAMES = [b"/media/x/My Music", b"/m/it's", b"/m/Ext\xff", b"/m/caf\xc3\xa9 \xe9t\xe9", b"/m/a\tb\nc",
         b"/m/back\\slash \\xff", b"/m/$HOME `id` \"q\" *", b"/m/bidi \xe2\x80\xaeevil", b"/m/-dash",
         b"/m/\xff1\xfea"]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_a_command_word_pasted_into_bash_is_the_path_byte_for_byte(name):
    word = command_word(os.fsdecode(name))
    assert word.isprintable() and "\n" not in word, word  # one line a terminal shows as it is
    shown = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True, check=True).stdout
    assert shown == name, (word, shown)
    assert command_word(name) == word  # bytes or text, the same word


def test_the_scans_suggested_command_for_a_link_whose_name_is_not_utf8_forgets_its_rows(tmp_path):
    """A library's link `Ext\\xff` into a disk not mounted now: the scan's line suggests `moodtag prune
    --forget-disk MOUNT LINK`; pasted into bash it forgets the disk's rows (before: 'no cached tracks under
    .../Ext\\xff (a typo ...)', nothing forgotten)."""
    _disk(tmp_path)
    out = _in_namespace(tmp_path, """
lib, ext, db = top / "lib", top / "mnt/my ext", top / "c.db"
lib.mkdir()
plug(top / "disk", ext)
os.symlink(ext, os.path.join(os.fsencode(lib), b"Ext\\xff"))
cli("scan", "scan", lib, "--db", db, "--jobs", "1")
unplug(ext, remove=False)
cli("away", "scan", lib, "--db", db, "--jobs", "1")
states("before", db)
print(json.dumps(out))
""")
    assert out["scan"][0] == 0 and len(out["before"]) == 3, out
    lines = [line for line in out["away"][2].splitlines() if "moodtag prune --forget-disk" in line]
    assert len(lines) == 1 and "$'" in lines[0], out["away"]
    command = re.search(r"moodtag (prune --forget-disk .*)\)$", lines[0]).group(1)
    db = tmp_path / "c.db"
    proc = subprocess.run(["bash", "-c", f"{sys.executable} -m tagger {command} --db {db}"],
                          capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "forgot 3 tracks whose files are gone\n", ""), (
        command, proc)
