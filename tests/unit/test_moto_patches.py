"""The sandbox's reference-counted patches (macie_chatops_sandbox.moto_patches), on a class and a module of its own."""

from __future__ import annotations

import types

import pytest

from macie_chatops_sandbox.moto_patches import Patches


class Emulator:
    def answer(self) -> str:
        return "moto's"


def test_the_first_install_patches_and_the_last_uninstall_restores_exactly_what_was_there() -> None:
    # GIVEN patches of a class's method and a module's attribute, with an undo of their own
    original = Emulator.__dict__["answer"]
    module = types.ModuleType("emulated")
    module.parse = len  # type: ignore[attr-defined]
    applied: list[str] = []
    undone: list[str] = []

    def apply(patches: Patches) -> None:
        applied.append("applied")
        patches.on_uninstall(lambda: undone.append("own undo"))
        patches.replace(Emulator, "answer", lambda self: "patched")
        patches.replace(module, "parse", str)
        patches.on_uninstall(lambda: undone.append("last registered"))

    patches = Patches(apply)
    # WHEN installed twice (the sandbox and a fixture, say)
    patches.install()
    patches.install()
    # THEN it is patched once
    assert applied == ["applied"] and patches.installed()
    assert Emulator().answer() == "patched" and module.parse is str
    # WHEN one user uninstalls THEN it stays patched for the other
    patches.uninstall()
    assert patches.installed() and Emulator().answer() == "patched" and undone == []
    # WHEN the other one does THEN everything is undone, the last registered first
    patches.uninstall()
    assert not patches.installed()
    assert Emulator.__dict__["answer"] is original and module.parse is len
    assert undone == ["last registered", "own undo"]
    # AND an extra uninstall changes nothing
    patches.uninstall()
    assert not patches.installed() and undone == ["last registered", "own undo"]
    # AND installing again patches again
    patches.install()
    assert applied == ["applied", "applied"] and Emulator().answer() == "patched"
    patches.uninstall()
    assert Emulator.__dict__["answer"] is original


def test_a_patch_that_fails_half_way_is_undone_and_its_error_goes_on() -> None:
    # GIVEN patches whose second replacement names an attribute the class does not have
    original = Emulator.__dict__["answer"]
    undone: list[str] = []

    def apply(patches: Patches) -> None:
        patches.on_uninstall(lambda: undone.append("own undo"))
        patches.replace(Emulator, "answer", lambda self: "patched")
        patches.replace(Emulator, "missing", lambda self: "never")

    patches = Patches(apply)
    # WHEN installed
    with pytest.raises(KeyError, match="missing"):
        patches.install()
    # THEN what it had applied is undone and it does not count as installed
    assert Emulator.__dict__["answer"] is original and "missing" not in Emulator.__dict__
    assert undone == ["own undo"] and not patches.installed()
    # AND an uninstall afterwards changes nothing
    patches.uninstall()
    assert undone == ["own undo"] and Emulator().answer() == "moto's"
