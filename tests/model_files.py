"""Helpers that read, write and edit model files (zip members) for the
persistence and load-contract tests.

A module of their own, not ``test_persistence``: importing a test module
from another one defines its stand-in estimator classes a second time, and
the allow-list of :func:`cbptt.load` keeps only the last definition.
"""
import json
import zipfile

import pytest

import cbptt


def _members(path):
    with zipfile.ZipFile(path) as z:
        return {i.filename: z.read(i) for i in z.infolist()}


def _write(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _edit_metadata(path, change):
    m = _members(path)
    meta = json.loads(m["metadata.json"])
    change(meta)
    m["metadata.json"] = json.dumps(meta)
    return _write(path, m)


def _refused(path, *words):
    with pytest.raises(ValueError) as info:
        cbptt.load(path)
    msg = str(info.value)
    assert msg.startswith("cannot load"), msg
    for w in words:
        assert w in msg, (w, msg)
    return msg
