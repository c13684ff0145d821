"""Atomic loads and stores of int64 array elements, and a spin-wait hint, for compiled code.

Two compiled loops on two threads that share a flag must see each other's
writes: a plain load in a loop may be hoisted out of it by the compiler, and
plain stores carry no ordering on weakly ordered machines.  These emit
LLVM's atomic load (acquire) and store (release) on the element, which
numba itself does not offer.
"""

from __future__ import annotations

import platform
from typing import Any, Callable, cast

from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

_PAUSE = platform.machine() in ("x86_64", "AMD64", "i686")


def _element(context: Any, builder: Any, aryty: Any, ary: Any, idxty: Any, idx: Any) -> Any:
    arr = make_array(aryty)(context, builder, ary)  # type: ignore[no-untyped-call]
    i = context.cast(builder, idx, idxty, types.intp)
    return cgutils.get_item_pointer(context, builder, aryty, arr, [i], wraparound=False)  # type: ignore[no-untyped-call]


@intrinsic
def _load_acquire(typingctx: Any, ary: Any, idx: Any) -> Any:
    """``ary[idx]`` read with acquire ordering: what the writer stored before its release is visible after."""
    if not (isinstance(ary, types.Array) and ary.dtype == types.int64 and isinstance(idx, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _element(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return types.int64(ary, idx), codegen


@intrinsic
def _store_release(typingctx: Any, ary: Any, idx: Any, value: Any) -> Any:
    """``ary[idx] = value`` with release ordering: every earlier store is visible to an acquiring reader."""
    if not (isinstance(ary, types.Array) and ary.dtype == types.int64 and isinstance(idx, types.Integer)):
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        ptr = _element(context, builder, sig.args[0], args[0], sig.args[1], args[1])
        val = context.cast(builder, args[2], sig.args[2], types.int64)
        builder.store_atomic(val, ptr, ordering="release", align=8)
        return context.get_dummy_value()

    return types.void(ary, idx, value), codegen


@intrinsic
def _spin_pause(typingctx: Any) -> Any:
    """The CPU's spin-wait hint (x86 ``pause``; nothing elsewhere): a waiting core yields its pipeline."""

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        if _PAUSE:  # numba's JIT assembles no inline asm: the intrinsic that is the instruction
            fnty = ir.FunctionType(ir.VoidType(), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")  # type: ignore[no-untyped-call]
            builder.call(fn, [])
        return context.get_dummy_value()

    return types.void(), codegen


# Typed names for the compiled callers (the same objects: numba resolves the intrinsic through them).
load_acquire = cast(Callable[[Any, int], int], _load_acquire)
store_release = cast(Callable[[Any, int, int], None], _store_release)
spin_pause = cast(Callable[[], None], _spin_pause)
