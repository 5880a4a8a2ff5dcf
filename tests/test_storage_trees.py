"""A project's tree as a manifest, laid out again from a blob cache."""

import os

import pytest

from computefarm.exceptions import StorageError
from computefarm.storage import trees
from computefarm.storage.cas import BlobStore


def make_project(root):
    (root / "src" / "lib").mkdir(parents=True)
    (root / "src" / "main.c").write_text("int main() { return 0; }\n")
    (root / "src" / "lib" / "util.h").write_text("#define N 3\n")
    (root / "run.sh").write_text("#!/bin/sh\necho ran\n")
    os.chmod(root / "run.sh", 0o755)
    os.symlink("src/main.c", root / "main-link.c")
    (root / "empty").mkdir()
    (root / "build").mkdir()
    (root / "build" / "main.o").write_bytes(b"old object")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / ".doit.db").write_bytes(b"doit")
    (root / "notes.tmp").write_text("scratch\n")


def test_scan_leaves_out_targets_excludes_and_tool_folders_and_keeps_modes_links_dirs(
        tmp_path):
    make_project(tmp_path)
    manifest = trees.scan(tmp_path, exclude=["*.tmp"], leave_out=["build/main.o"])
    assert sorted(manifest.files) == ["run.sh", "src/lib/util.h", "src/main.c"]
    assert manifest.files["run.sh"][2] is True and manifest.files["src/main.c"][2] is False
    assert manifest.links == {"main-link.c": "src/main.c"}
    assert sorted(manifest.dirs) == ["build", "empty"]     # build: only targets were in it
    again = trees.decode(manifest.encode())
    assert (again.files, again.links, sorted(again.dirs)) == \
        (manifest.files, manifest.links, sorted(manifest.dirs))


def test_the_digest_cache_reads_only_files_that_changed(tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    make_project(project)
    clock = lambda: 4e9     # noqa: E731  (every file is old enough to be trusted)
    cache = trees.DigestCache(str(tmp_path / "digests"), clock=clock)
    first = trees.scan(project, exclude=["*.tmp", "build/"], cache=cache)
    cache.save()
    assert cache.hashed == 3
    cache = trees.DigestCache(str(tmp_path / "digests"), clock=clock)
    (project / "src" / "main.c").write_text("int main() { return 1; }\n")
    second = trees.scan(project, exclude=["*.tmp", "build/"], cache=cache)
    assert cache.hashed == 1
    assert second.files["src/main.c"] != first.files["src/main.c"]
    assert second.files["run.sh"] == first.files["run.sh"]


def test_a_file_changed_just_now_is_never_trusted_from_the_cache(tmp_path):
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "a").write_text("one")
    cache = trees.DigestCache(str(tmp_path / "digests"))     # the real clock: "a" is new
    trees.scan(tmp_path / "project", cache=cache)
    trees.scan(tmp_path / "project", cache=cache)
    assert cache.hashed == 2


@pytest.mark.parametrize("path", ["../etc/passwd", "/etc/passwd", "a/../../b", "a//b", "."])
def test_a_manifest_with_a_path_outside_its_tree_is_refused(path):
    blob = trees.Manifest({path: ("0" * 64, 1, False)}).encode()
    with pytest.raises(StorageError, match="not relative inside the tree"):
        trees.decode(blob)


def test_lay_out_links_from_the_cache_copies_executables_and_sees_inputs_written_into(
        tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    make_project(project)
    manifest = trees.scan(project)
    store = BlobStore(tmp_path / "cache")
    for path in manifest.files:
        store.add_file(str(project / path), link=False)
    target = tmp_path / "scratch"
    target.mkdir()
    linked = trees.lay_out(manifest, store, str(target))
    assert (target / "src" / "lib" / "util.h").read_text() == "#define N 3\n"
    assert os.stat(target / "src" / "main.c").st_ino == \
        os.stat(store.path(manifest.files["src/main.c"][0])).st_ino
    assert os.access(target / "run.sh", os.X_OK)
    assert os.readlink(target / "main-link.c") == "src/main.c"
    assert (target / "empty").is_dir()
    assert trees.changed_inputs(store, linked) == []
    os.chmod(target / "src" / "main.c", 0o644)      # (root could write it anyway)
    (target / "src" / "main.c").write_text("scribbled")
    assert trees.changed_inputs(store, linked) == [manifest.files["src/main.c"][0]]
    found = trees.existing(str(target), ["run.sh", "missing.o", "run.sh", "empty"])
    assert found == [("run.sh", str(target / "run.sh"), True)]     # once; files only
