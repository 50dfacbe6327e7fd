"""What the benchmark scripts share: argument types and the machine they ran on."""

import argparse
import math
import os
import platform


def positive_int(option, minimum=1):
    """An argparse type: an integer of at least `minimum`, named `option` in errors."""

    def check(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} must be an integer. Received: {option} {text}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(
                f"{option} must be at least {minimum}. Received: {option} {text}"
            )
        return value

    return check


def positive_float(option):
    """An argparse type: a finite number above 0, named `option` in errors."""

    def check(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{option} must be a number. Received: {option} {text}"
            ) from None
        if not 0 < value < math.inf:
            raise argparse.ArgumentTypeError(
                f"{option} must be a finite number above 0. Received: {option} {text}"
            )
        return value

    return check


def machine():
    """The cores this process may use, the CPU model, the memory and the OS, in a line."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    memory = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cores} cores ({cpu}), {memory:.0f} GiB RAM, {platform.system()}"
